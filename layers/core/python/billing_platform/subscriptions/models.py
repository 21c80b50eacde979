"""Subscription-side models: the tenant's stored subscription state and the Stripe event envelope. Pure
data, no I/O."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from billing_platform.providers.base import ProviderSubscription

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
