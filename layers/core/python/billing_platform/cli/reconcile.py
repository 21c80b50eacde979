"""`billing-admin tenant reconcile`: compare a tenant's stored subscription with Stripe's, and (with
`--apply`) bring the platform in line through the webhook path.

Stripe is the source of truth. The fix is applied as a synthetic `customer.subscription.updated`
(`deleted` once the subscription ended) event carrying the object just fetched from Stripe, created
now, through `WebhookProcessor.process`: the same ordering rules, audit entry and entitlement update as
a real delivery, and a ledger entry under an id that names the reconcile.

It also checks the effect the stored subscription asked of the entitlements (`entitlement`:
apply_plan / suspend / revoke) against the tenant's stored plan, and re-applies that effect when they
disagree (an entitlement write lost after the subscription record was saved)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from billing_platform.catalog import Catalog
from billing_platform.entitlements.models import PlanStatus, TenantPlan
from billing_platform.errors import NotFoundError
from billing_platform.providers.base import ProviderSubscription, SyncBillingProvider
from billing_platform.subscriptions.models import SUBSCRIPTION_TERMS, StripeEvent, SubscriptionRecord
from billing_platform.subscriptions.repository import SubscriptionRepository
from billing_platform.subscriptions.webhooks import EntitlementEffects, WebhookProcessor, apply_entitlement_effect

COMPARED = ("customer_id", *SUBSCRIPTION_TERMS)


class Entitlements(EntitlementEffects, Protocol):
    """The part of `EntitlementService` a reconcile reads and drives: the webhook effects, plus the plan read."""

    def plan_for(self, tenant_id: str, *, fresh: bool = False) -> TenantPlan: ...


@dataclass
class ReconcileReport:
    tenant_id: str
    subscription_id: str
    drift: dict[str, dict[str, Any]] = field(default_factory=dict)
    entitlement_drift: dict[str, Any] = field(default_factory=dict)
    applied: bool = False
    outcome: str | None = None

    @property
    def in_sync(self) -> bool:
        return not self.drift and not self.entitlement_drift

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "in_sync": self.in_sync}


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


def _entitlement_drift(record: SubscriptionRecord | None, plan: TenantPlan | None, catalog: Catalog) -> dict[str, Any]:
    """What the stored plan should be after the subscription's last entitlement effect, if it is not."""
    if record is None or plan is None:
        return {}
    suspended = plan.status == PlanStatus.SUSPENDED.value
    found = {"plan_id": plan.plan_id, "status": plan.status}
    if record.entitlement == "apply_plan" and (plan.plan_id != record.plan_id or suspended):
        return {"expected": {"plan_id": record.plan_id, "status": record.status}, "found": found}
    if record.entitlement == "suspend" and not suspended:
        return {"expected": {"status": PlanStatus.SUSPENDED.value}, "found": found}
    if record.entitlement == "revoke" and plan.plan_id != catalog.default_plan:
        return {"expected": {"plan_id": catalog.default_plan}, "found": found}
    return {}


def reconcile_tenant(
    tenant_id: str,
    provider: SyncBillingProvider,
    repository: SubscriptionRepository,
    processor: WebhookProcessor | None,
    *,
    entitlements: Entitlements | None = None,
    catalog: Catalog | None = None,
    subscription_id: str | None = None,
    apply: bool = False,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ReconcileReport:
    """Diff the stored subscription against Stripe (and, given `entitlements` and `catalog`, the stored
    plan against the subscription); with `apply`, fix the drift through the webhook path."""
    record = repository.get_subscription(tenant_id)
    sub_id = subscription_id or (record.subscription_id if record else None)
    if sub_id is None:
        raise NotFoundError(
            f"tenant {tenant_id} has no stored subscription; pass --subscription-id to adopt one from Stripe",
            code="subscription_not_found",
        )
    remote = provider.get_subscription(sub_id)
    report = ReconcileReport(tenant_id=tenant_id, subscription_id=sub_id, drift=_drift(record, remote))
    if entitlements is not None and catalog is not None and not report.drift:
        report.entitlement_drift = _entitlement_drift(record, entitlements.plan_for(tenant_id, fresh=True), catalog)
    if report.in_sync or not apply:
        return report
    if not report.drift:
        # The subscription is right, its effect on the entitlements was lost: apply the effect again.
        assert record is not None
        assert entitlements is not None
        apply_entitlement_effect(record, entitlements, by="reconcile")
        report.outcome, report.applied = f"entitlements:{record.entitlement}", True
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
