"""`billing-admin tenant show`: one tenant at a glance (billing profile, subscription, quotas, recent
usage per resource, and what the meter reporter has reported)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from billing_platform.catalog import load_catalog
from billing_platform.entitlements.service import EntitlementService
from billing_platform.errors import BillingError
from billing_platform.metering.repository import MeterWatermarkRepository
from billing_platform.settings import Settings
from billing_platform.subscriptions.repository import SubscriptionRepository
from billing_platform.usage.models import Granularity, bucket_label
from billing_platform.usage.queries import UsageAggregator


def show_tenant(tenant_id: str, settings: Settings, *, days: int = 7, now: datetime | None = None) -> dict[str, Any]:
    """Everything the platform holds about one tenant, read-only. Raises nothing for a tenant it does
    not know: every section is simply empty (the caller decides whether that is an error)."""
    now = now or datetime.now(UTC)
    catalog = load_catalog(settings.plan_catalog_path)
    subscriptions = SubscriptionRepository(settings)
    record = subscriptions.get_subscription(tenant_id)
    profile = subscriptions.get_profile(tenant_id)
    out: dict[str, Any] = {
        "tenant_id": tenant_id,
        "profile": {k: v for k, v in sorted(profile.items()) if k not in ("pk", "sk")} if profile else None,
        "subscription": record.snapshot() if record else None,
    }
    try:
        out["entitlements"] = EntitlementService(settings, catalog=catalog).entitlements(tenant_id).to_dict()
    except BillingError as exc:
        out["entitlements"] = {"error": exc.to_dict()}
    usage = UsageAggregator(settings=settings, clock=lambda: now).sync
    out["usage"] = {}
    for resource in sorted(catalog.resource_types):
        trend = usage.get_usage_trends(tenant_id, resource, days)
        if trend.total:
            out["usage"][resource] = {
                "total": str(trend.total),
                "days": {p.date: str(p.quantity) for p in trend.points if p.quantity},
            }
    watermarks = MeterWatermarkRepository(settings)
    labels = [bucket_label(Granularity.DAY, now - timedelta(days=n)) for n in range(days - 1, -1, -1)]
    metered = sorted({r for p in catalog.plans.values() for r, q in p.quotas.items() if q.metered})
    marks = watermarks.days((tenant_id, r, d) for r in metered for d in labels)
    reported: dict[str, dict[str, Any]] = {}
    for (_, resource, _day), mark in sorted(marks.items()):
        entry = reported.setdefault(resource, {"reported": Decimal(0), "open_claims": 0})
        entry["reported"] += mark.reported
        entry["open_claims"] += mark.open_claims
    out["metered"] = {r: {"reported": str(v["reported"]), "open_claims": v["open_claims"]} for r, v in reported.items()}
    return out
