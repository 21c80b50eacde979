"""The HTTP API's request and response bodies for customers, subscriptions and the Stripe webhook's
answer."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from billing_platform.ids import TENANT_ID_PATTERN
from billing_platform.providers.base import ProviderCustomer, ProviderSubscription
from billing_platform.subscriptions.models import WebhookOutcome, subscription_terms

PRICE_ID = r"^[A-Za-z0-9_]{1,128}$"
EMAIL = r"^[^@\s]{1,64}@[^@\s]{1,255}$"

# Built on first use (defer_build): the Stripe webhook imports this module for its own answer and never
# uses these five, so its cold start does not build them (tests/unit/core/test_cold_start_imports.py).
API_MODELS = (
    "CreateCustomerRequest",
    "CustomerOut",
    "CreateSubscriptionRequest",
    "UpdateSubscriptionRequest",
    "SubscriptionOut",
)


class CreateCustomerRequest(BaseModel):
    """`POST /v1/customers` (operator)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    tenant_id: str = Field(pattern=TENANT_ID_PATTERN, description="The platform tenant this customer pays for")
    email: str = Field(pattern=EMAIL, max_length=320)
    name: str | None = Field(default=None, max_length=256)


class CustomerOut(BaseModel):
    """A billing customer as Stripe holds it."""

    model_config = ConfigDict(defer_build=True)

    id: str = Field(description="Stripe's customer id (cus_...)")
    tenant_id: str | None = Field(description="The tenant the customer is bound to")
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
    """`POST /v1/subscriptions` (operator)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    tenant_id: str = Field(pattern=TENANT_ID_PATTERN, description="A tenant with a billing customer")
    price_id: str = Field(pattern=PRICE_ID, description="A Stripe price id listed in the plan catalog")
    trial_days: int | None = Field(default=None, ge=1, le=730)


class UpdateSubscriptionRequest(BaseModel):
    """`PATCH /v1/subscriptions/{subscription_id}` (operator)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    price_id: str = Field(pattern=PRICE_ID, description="The new price; Stripe prorates the change")


class SubscriptionOut(BaseModel):
    """A subscription as Stripe answered, with the tenant and the catalog plan of its price."""

    model_config = ConfigDict(defer_build=True)

    id: str = Field(description="Stripe's subscription id (sub_...)")
    customer_id: str
    tenant_id: str | None
    status: str = Field(description="Stripe's status: incomplete, trialing, active, past_due, unpaid, canceled ...")
    price_id: str | None
    plan_id: str | None = Field(description="The catalog plan of the price")
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


class StripeEventReceivedOut(WebhookOutcome):
    """What `POST /v1/webhooks/stripe` answers Stripe for an event it verified."""

    received: Literal[True] = True
    outcome: str = Field(
        description="ignored_type (a type the platform does not handle), duplicate (applied before), or what "
        "applying it did"
    )
