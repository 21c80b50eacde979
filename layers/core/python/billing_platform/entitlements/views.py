"""Reading quotas without consuming: `check` (would this be granted now? the quota, then the tenant's live
grants), `read_quota` (the whole quota as one counter, rolled into the current period in memory) and the
tenant's entitlement listing (each quota with its grants' balances and expiries)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from billing_platform.catalog.models import QuotaPolicy, ResourceQuota
from billing_platform.entitlements.answers import not_in_plan, suspended_answer
from billing_platform.entitlements.context import EntitlementContext
from billing_platform.entitlements.models import (
    ConsumeRequest,
    CounterState,
    DenyReason,
    EntitlementCheck,
    QuotaCounter,
    TenantPlan,
    advance_period,
    check_from_counter,
    combine_shards,
)
from billing_platform.entitlements.plans import plan_for, plan_period
from billing_platform.entitlements.repository import counter_key
from billing_platform.entitlements.windows import window_refusal
from billing_platform.grants.models import draw_order, live_balance
from billing_platform.levels import short_window
from billing_platform.quantities import ZERO, decimal_str


@dataclass(frozen=True)
class QuotaView:
    """One quota of a tenant as `GET /v1/tenants/{id}/entitlements` shows it."""

    resource_type: str
    policy: QuotaPolicy | None
    limit: Decimal | None
    used: Decimal
    remaining: Decimal | None
    overage: Decimal
    period_start: datetime | None
    period_end: datetime | None
    state: str
    shards: int
    grant_remaining: Decimal = ZERO  # what the live grants hold on top of the quota
    grants: tuple[dict[str, object], ...] = ()  # every grant of the resource, in draw order

    def to_dict(self) -> dict[str, object]:
        return {
            "resource_type": self.resource_type,
            "policy": self.policy.value if self.policy else None,
            "limit": decimal_str(self.limit),
            "used": decimal_str(self.used),
            "remaining": decimal_str(self.remaining),
            "overage": decimal_str(self.overage),
            "period_start": self.period_start.isoformat() if self.period_start else None,
            "period_end": self.period_end.isoformat() if self.period_end else None,
            "state": self.state,
            "shards": self.shards,
            "grant_remaining": decimal_str(self.grant_remaining),
            "grants": list(self.grants),
        }


@dataclass(frozen=True)
class TenantEntitlements:
    """Every quota and feature of a tenant."""

    plan: TenantPlan
    quotas: tuple[QuotaView, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "tenant_id": self.plan.tenant_id,
            "plan_id": self.plan.plan_id,
            "status": self.plan.status,
            "subscribed": self.plan.subscribed,
            "period_start": self.plan.period_start.isoformat(),
            "period_end": self.plan.period_end.isoformat(),
            "features": {name: self.plan.feature(name) for name in sorted(self.plan.features)},
            "quotas": [q.to_dict() for q in self.quotas],
        }


def check(ctx: EntitlementContext, request: ConsumeRequest) -> EntitlementCheck:
    """`EntitlementService.check`, input already validated: would `request` be granted now?"""
    tenant_id, resource_type, quantity = request.tenant_id, request.resource_type, request.quantity
    view = read_quota(ctx, tenant_id, resource_type)
    now = ctx.clock()
    if view is None:
        return not_in_plan(tenant_id, resource_type, quantity, ctx.enforcing)
    if view.state is CounterState.SUSPENDED:
        return suspended_answer(view, quantity, ctx.enforcing, 1)
    allowed = view.allows(quantity, now, enforce=ctx.enforcing)
    grant_remaining = None
    if not allowed and view.policy is QuotaPolicy.HARD and view.state is CounterState.ACTIVE:
        # Short on the quota alone: a consume would go on to the tenant's live grants.
        grant_remaining = live_balance(ctx.tenant_grants.list(tenant_id, resource_type), now)
        allowed = max(ZERO, view.remaining) + grant_remaining >= quantity
    if allowed and view.windows:
        # The plan's short windows: a consume now would be refused 429 by one without room.
        item = ctx.repo.get_counter_item(counter_key(tenant_id, resource_type))
        short = short_window(item, quantity, now) if item is not None else None
        if short is not None and item is not None:
            return replace(window_refusal(view, quantity, short, item, now), grant_remaining=grant_remaining)
    answer = check_from_counter(
        view,
        quantity,
        allowed=allowed,
        enforced=ctx.enforcing,
        reason=None if allowed else DenyReason.EXHAUSTED,
    )
    return replace(answer, grant_remaining=grant_remaining)


def read_quota(ctx: EntitlementContext, tenant_id: str, resource_type: str) -> QuotaCounter | None:
    """The whole quota as one counter, rolled into the current period in memory; None when the
    resource is not in the plan. Unprovisioned quotas show the plan's fresh numbers."""
    now = ctx.clock()
    directory = ctx.repo.get_counter(tenant_id, resource_type)
    counters: list[QuotaCounter] = []
    if directory is not None and directory.state is not CounterState.RETIRED:
        counters = [directory]
    elif directory is not None and directory.current_shards:
        n = directory.current_shards
        counters = ctx.repo.get_counters([counter_key(tenant_id, resource_type, i, n) for i in range(n)])
    elif directory is not None:
        return None
    if not counters:
        plan = plan_for(ctx, tenant_id)
        quota = ctx.catalog.plan(plan.plan_id).quota(resource_type)
        if quota is None:
            return None
        return _fresh_counter(tenant_id, resource_type, plan, quota, plan_period(plan, now))
    rolled = [
        c if c.period_end > now else c.rolled(*advance_period(c.period_start, c.period_end, now)) for c in counters
    ]
    return combine_shards(rolled) if len(rolled) > 1 else rolled[0]


def live_counters(
    ctx: EntitlementContext, tenant_id: str, resource_type: str, layout: int
) -> list[QuotaCounter] | None:
    """The counters of the layout in force (empty: not provisioned; None: not in the plan)."""
    directory = ctx.repo.get_counter(tenant_id, resource_type)
    if directory is None:
        return []
    if directory.state is not CounterState.RETIRED:
        return [directory]
    n = directory.current_shards or 0
    if n == 0:
        return None
    ctx.layouts.put((tenant_id, resource_type), n)
    return ctx.repo.get_counters([counter_key(tenant_id, resource_type, i, n) for i in range(n)])


def _fresh_counter(
    tenant_id: str,
    resource_type: str,
    plan: TenantPlan,
    quota: ResourceQuota,
    period: tuple[datetime, datetime],
) -> QuotaCounter:
    limit = ZERO if quota.limit is None else quota.limit
    return QuotaCounter(
        tenant_id=tenant_id,
        resource_type=resource_type,
        policy=quota.policy,
        limit=limit,
        used=ZERO,
        remaining=limit,
        period_start=period[0],
        period_end=period[1],
        plan_id=plan.plan_id,
        total_limit=quota.limit,
    )


def entitlements(ctx: EntitlementContext, tenant_id: str) -> TenantEntitlements:
    """`EntitlementService.entitlements`."""
    plan = plan_for(ctx, tenant_id, fresh=True)
    catalog_plan = ctx.catalog.plan(plan.plan_id)
    views: list[QuotaView] = []
    now = ctx.clock()
    grants = sorted(ctx.tenant_grants.list(tenant_id, consistent=False), key=draw_order)
    for resource_type in sorted(catalog_plan.quotas):
        counter = read_quota(ctx, tenant_id, resource_type)
        if counter is None:
            continue
        check = check_from_counter(counter, ZERO, allowed=True)
        mine = [g for g in grants if g.resource_type == resource_type]
        views.append(
            QuotaView(
                resource_type=resource_type,
                policy=counter.policy,
                limit=check.limit,
                used=counter.used,
                remaining=check.remaining,
                overage=check.overage,
                period_start=counter.period_start,
                period_end=counter.period_end,
                state=counter.state.value,
                shards=counter.shards,
                grant_remaining=live_balance(mine, now),
                grants=tuple(g.to_dict(now) for g in mine),
            )
        )
    return TenantEntitlements(plan=plan, quotas=tuple(views))
