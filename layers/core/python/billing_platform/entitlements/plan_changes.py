"""Effects of the subscription lifecycle (driven by billing_platform.subscriptions.webhooks): a plan
applied or renewed, a tenant suspended, a subscription revoked back to the catalog default."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from billing_platform.entitlements.context import EntitlementContext
from billing_platform.entitlements.models import CounterState, PlanStatus, TenantPlan, calendar_month
from billing_platform.entitlements.plans import plan_for, plan_period
from billing_platform.entitlements.reconcile import Mode, Terms, reconcile
from billing_platform.entitlements.views import live_counters
from billing_platform.errors import UnprocessableError

logger = logging.getLogger(__name__)


def apply_plan(
    ctx: EntitlementContext,
    tenant_id: str,
    plan_id: str,
    period: tuple[datetime, datetime],
    status: str,
    version: int | None,
) -> None:
    """`EntitlementService.apply_plan`: the plan for `period` (start, end), applied unless `version`
    is older than the stored one."""
    period_start, period_end = period
    catalog_plan = ctx.catalog.plan(plan_id)
    if period_end <= period_start:
        raise UnprocessableError("the billing period must end after it starts", code="invalid_period")
    now = ctx.clock()
    plan = TenantPlan(
        tenant_id=tenant_id,
        plan_id=plan_id,
        status=status,
        period_start=period_start,
        period_end=period_end,
        features=dict(catalog_plan.features),
        counter_shards=catalog_plan.counter_shards,
        source_version=version,
    )
    _apply(ctx, plan, Mode.RENEW, CounterState.ACTIVE, now)


def suspend(ctx: EntitlementContext, tenant_id: str, reason: str) -> None:
    """`EntitlementService.suspend`."""
    now = ctx.clock()
    stored = plan_for(ctx, tenant_id, fresh=True)
    plan = replace(stored, status=PlanStatus.SUSPENDED.value, suspended_reason=reason, stored=True)
    if not ctx.repo.put_plan(plan, now):
        return
    ctx.plans.invalidate(tenant_id)
    for resource_type in ctx.catalog.resource_types:
        counters = live_counters(ctx, tenant_id, resource_type, 1)
        for counter in counters or []:
            ctx.repo.set_state(counter, CounterState.SUSPENDED, now)
    logger.info("entitlements suspended", extra={"tenant_id": tenant_id, "reason": reason})


def revoke(ctx: EntitlementContext, tenant_id: str) -> None:
    """`EntitlementService.revoke`."""
    now = ctx.clock()
    default = ctx.catalog.default
    stored = ctx.repo.get_plan(tenant_id)
    start, end = calendar_month(now)
    plan = TenantPlan(
        tenant_id=tenant_id,
        plan_id=default.id,
        status=PlanStatus.CANCELED.value,
        period_start=start,
        period_end=end,
        features=dict(default.features),
        counter_shards=default.counter_shards,
        # Kept, so an older subscription event arriving late cannot bring the old plan back.
        source_version=stored.source_version if stored else None,
    )
    _apply(ctx, plan, Mode.KEEP, CounterState.ACTIVE, now)


def _apply(ctx: EntitlementContext, plan: TenantPlan, mode: Mode, state: CounterState, now: datetime) -> None:
    if not ctx.repo.put_plan(plan, now):
        logger.info(
            "older plan application ignored",
            extra={"tenant_id": plan.tenant_id, "plan_id": plan.plan_id, "source_version": plan.source_version},
        )
        return
    ctx.plans.invalidate(plan.tenant_id)
    catalog_plan = ctx.catalog.plan(plan.plan_id)
    period = plan_period(plan, now)
    for resource_type in sorted(ctx.catalog.resource_types):
        terms = Terms(plan, catalog_plan.quota(resource_type), period, mode, state)
        reconcile(ctx, plan.tenant_id, resource_type, terms)
    logger.info(
        "plan applied",
        extra={"tenant_id": plan.tenant_id, "plan_id": plan.plan_id, "status": plan.status, "mode": mode.value},
    )
