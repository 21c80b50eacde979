"""Subscription-side models: the operator API's requests and responses, the tenant's stored
subscription state, and the Stripe event envelope. Pure data, no I/O."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from billing_platform.ids import TENANT_ID_PATTERN
from billing_platform.providers.base import ProviderCustomer, ProviderSubscription

TENANT_ID = TENANT_ID_PATTERN
PRICE_ID = r"^[A-Za-z0-9_]{1,128}$"
EMAIL = r"^[^@\s]{1,64}@[^@\s]{1,255}$"


# The API's request and response models are built on first use (defer_build): the Stripe webhook imports
# this module for its event and record models and never uses these five; building them would add to its
# cold start (tests/unit/test_cold_start_imports.py checks they stay unbuilt there).
API_MODELS = (
    "CreateCustomerRequest",
    "CustomerOut",
    "CreateSubscriptionRequest",
    "UpdateSubscriptionRequest",
    "SubscriptionOut",
)


class CreateCustomerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    tenant_id: str = Field(pattern=TENANT_ID, description="The platform tenant this customer pays for")
    email: str = Field(pattern=EMAIL, max_length=320)
    name: str | None = Field(default=None, max_length=256)


class CustomerOut(BaseModel):
    model_config = ConfigDict(defer_build=True)
    id: str
    tenant_id: str | None
    email: str | None
    name: str | None
    created: datetime | None
    deleted: bool = False

    @classmethod
    def from_provider(cls, customer: ProviderCustomer, tenant_id: str | None = None) -> CustomerOut:
        return cls(
            id=customer.id,
            tenant_id=customer.tenant_id or tenant_id,
            email=customer.email,
            name=customer.name,
            created=customer.created,
            deleted=customer.deleted,
        )


class CreateSubscriptionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    tenant_id: str = Field(pattern=TENANT_ID)
    price_id: str = Field(pattern=PRICE_ID, description="A Stripe price id listed in the plan catalog")
    trial_days: int | None = Field(default=None, ge=1, le=730)


class UpdateSubscriptionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    price_id: str = Field(pattern=PRICE_ID, description="The new price; Stripe prorates the change")


# What the platform keeps of a provider's subscription, besides its ids, in API answers and in its own record.
SUBSCRIPTION_TERMS = (
    "status",
    "price_id",
    "current_period_start",
    "current_period_end",
    "cancel_at_period_end",
    "cancel_at",
    "trial_end",
)


def subscription_terms(sub: ProviderSubscription) -> dict[str, Any]:
    return {name: getattr(sub, name) for name in SUBSCRIPTION_TERMS}


class SubscriptionOut(BaseModel):
    model_config = ConfigDict(defer_build=True)
    id: str
    customer_id: str
    tenant_id: str | None
    status: str
    price_id: str | None
    plan_id: str | None
    created: datetime
    current_period_start: datetime | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    cancel_at: datetime | None
    trial_end: datetime | None

    @classmethod
    def from_provider(cls, sub: ProviderSubscription, *, tenant_id: str | None, plan_id: str | None) -> SubscriptionOut:
        return cls(
            id=sub.id,
            customer_id=sub.customer_id,
            tenant_id=tenant_id,
            plan_id=plan_id,
            created=sub.created,
            **subscription_terms(sub),
        )


class SubscriptionRecord(BaseModel):
    """`TENANT#<tid>`/`SUBSCRIPTION`: the tenant's current subscription as the webhooks last applied it.

    `version` is the Stripe event `created` (seconds) the state came from; `revision` counts writes
    and guards them (optimistic concurrency), so two webhook deliveries never interleave."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str
    subscription_id: str
    customer_id: str
    status: str
    price_id: str | None
    plan_id: str | None
    subscription_created: datetime
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    cancel_at_period_end: bool = False
    cancel_at: datetime | None = None
    trial_end: datetime | None = None
    past_due_since: datetime | None = None
    entitlement: str = "none"  # what was last asked of the entitlement service
    version: int = 0
    last_event_id: str | None = None
    revision: int = 0
    updated_at: datetime | None = None

    def snapshot(self) -> dict[str, Any]:
        """A JSON-safe view for audit entries and logs."""
        return self.model_dump(mode="json", exclude={"revision"})


class StripeEventData(BaseModel):
    object: dict[str, Any]
    previous_attributes: dict[str, Any] | None = None


class StripeEvent(BaseModel):
    """The envelope of a Stripe webhook event (snapshot payload)."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(pattern=r"^evt_\w+$")
    type: str
    created: int
    data: StripeEventData
    api_version: str | None = None
    livemode: bool = False


class WebhookOutcome(BaseModel):
    """What the webhook answers Stripe (and what the ledger keeps)."""

    event_id: str
    type: str
    outcome: str
    tenant_id: str | None = None
