"""`billing-admin tenant reconcile`: compare a tenant's stored subscription with Stripe's, and (with
`--apply`) bring the platform in line through the webhook path.

Stripe is the source of truth. The fix is applied as a synthetic `customer.subscription.updated`
(`deleted` once the subscription ended) event carrying the object just fetched from Stripe, created
now, through `WebhookProcessor.process`: the same ordering rules, audit entry and entitlement update as
a real delivery, and a ledger entry under an id that names the reconcile."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from billing_platform.errors import NotFoundError
from billing_platform.providers.base import ProviderSubscription, SyncBillingProvider
from billing_platform.subscriptions.models import StripeEvent, SubscriptionRecord
from billing_platform.subscriptions.repository import SubscriptionRepository
from billing_platform.subscriptions.webhooks import WebhookProcessor

COMPARED = (
    "customer_id",
    "status",
    "price_id",
    "current_period_start",
    "current_period_end",
    "cancel_at_period_end",
    "cancel_at",
    "trial_end",
)


@dataclass
class ReconcileReport:
    tenant_id: str
    subscription_id: str
    drift: dict[str, dict[str, Any]] = field(default_factory=dict)
    applied: bool = False
    outcome: str | None = None

    @property
    def in_sync(self) -> bool:
        return not self.drift

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "subscription_id": self.subscription_id,
            "in_sync": self.in_sync,
            "drift": self.drift,
            "applied": self.applied,
            "outcome": self.outcome,
        }


def _epoch(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value else None


def stripe_shape(sub: ProviderSubscription, tenant_id: str) -> dict[str, Any]:
    """The subscription as Stripe serialises it (current API: the period on the item), enough for
    `ProviderSubscription.from_stripe` to read back exactly `sub`."""
    return {
        "id": sub.id,
        "object": "subscription",
        "customer": sub.customer_id,
        "status": sub.status,
        "created": _epoch(sub.created),
        "cancel_at_period_end": sub.cancel_at_period_end,
        "cancel_at": _epoch(sub.cancel_at),
        "canceled_at": _epoch(sub.canceled_at),
        "ended_at": _epoch(sub.ended_at),
        "trial_end": _epoch(sub.trial_end),
        "metadata": {"tenant_id": sub.tenant_id or tenant_id},
        "items": {
            "object": "list",
            "data": [
                {
                    "object": "subscription_item",
                    "price": {"id": sub.price_id, "object": "price"} if sub.price_id else None,
                    "current_period_start": _epoch(sub.current_period_start),
                    "current_period_end": _epoch(sub.current_period_end),
                }
            ],
        },
    }


def _drift(record: SubscriptionRecord | None, remote: ProviderSubscription) -> dict[str, dict[str, Any]]:
    if record is None:
        return {"record": {"platform": None, "stripe": remote.id}}
    out: dict[str, dict[str, Any]] = {}
    if record.subscription_id != remote.id:
        out["subscription_id"] = {"platform": record.subscription_id, "stripe": remote.id}
    for name in COMPARED:
        mine, theirs = getattr(record, name), getattr(remote, name)
        if mine != theirs:
            out[name] = {
                "platform": mine.isoformat() if isinstance(mine, datetime) else mine,
                "stripe": theirs.isoformat() if isinstance(theirs, datetime) else theirs,
            }
    return out


def reconcile_tenant(
    tenant_id: str,
    provider: SyncBillingProvider,
    repository: SubscriptionRepository,
    processor: WebhookProcessor | None,
    *,
    subscription_id: str | None = None,
    apply: bool = False,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ReconcileReport:
    """Diff the stored subscription against Stripe; with `apply`, fix any drift through the processor."""
    record = repository.get_subscription(tenant_id)
    sub_id = subscription_id or (record.subscription_id if record else None)
    if sub_id is None:
        raise NotFoundError(
            f"tenant {tenant_id} has no stored subscription; pass --subscription-id to adopt one from Stripe",
            code="subscription_not_found",
        )
    remote = provider.get_subscription(sub_id)
    report = ReconcileReport(tenant_id=tenant_id, subscription_id=sub_id, drift=_drift(record, remote))
    if report.in_sync or not apply:
        return report
    assert processor is not None
    now = int(clock().timestamp())
    digest = hashlib.sha256(f"{tenant_id}|{sub_id}|{now}".encode()).hexdigest()[:24]
    event = StripeEvent.model_validate(
        {
            "id": f"evt_reconcile_{digest}",
            "object": "event",
            "type": "customer.subscription.deleted" if remote.has_ended else "customer.subscription.updated",
            "created": now,
            "livemode": False,
            "data": {"object": stripe_shape(remote, tenant_id)},
        }
    )
    report.outcome = processor.process(event).outcome
    report.applied = report.outcome.startswith("applied")
    return report
