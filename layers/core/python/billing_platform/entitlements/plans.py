"""The tenant's plan as the use cases see it: stored, or the catalog default for a known tenant."""

from __future__ import annotations

from datetime import datetime

from billing_platform.entitlements.context import EntitlementContext
from billing_platform.entitlements.models import PlanStatus, TenantPlan, advance_period, calendar_month
from billing_platform.errors import NotFoundError


def plan_for(ctx: EntitlementContext, tenant_id: str, *, fresh: bool = False) -> TenantPlan:
    """`EntitlementService.plan_for`."""
    if not fresh:
        cached = ctx.plans.get(tenant_id)
        if cached is not None:
            return cached
    plan = ctx.repo.get_plan(tenant_id)
    if plan is None:
        if not ctx.repo.tenant_known(tenant_id):
            raise NotFoundError(f"unknown tenant {tenant_id!r}", code="unknown_tenant")
        default = ctx.catalog.default
        start, end = calendar_month(ctx.clock())
        plan = TenantPlan(
            tenant_id=tenant_id,
            plan_id=default.id,
            status=PlanStatus.ACTIVE.value,
            period_start=start,
            period_end=end,
            features=dict(default.features),
            counter_shards=default.counter_shards,
            stored=False,
        )
    ctx.plans.put(tenant_id, plan)
    return plan


def plan_period(plan: TenantPlan, now: datetime) -> tuple[datetime, datetime]:
    """The plan's period, stepped forward to the one containing now when no renewal came yet."""
    if plan.period_end > now:
        return plan.period_start, plan.period_end
    return advance_period(plan.period_start, plan.period_end, now)
