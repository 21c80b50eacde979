"""Bring a quota's counters to the plan's terms: provisioning on first use, new terms on a plan change
(the period's and the short windows'), and layout switches (one counter <-> N shards) that never lose or
double-grant usage."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from billing_platform.catalog.models import QuotaPolicy, ResourceQuota, window_marker
from billing_platform.entitlements.context import MAX_ROUNDS, EntitlementContext
from billing_platform.entitlements.models import (
    CounterState,
    QuotaCounter,
    TenantPlan,
    combine_shards,
    same_period,
    split_limit,
    spread_used,
)
from billing_platform.entitlements.plans import plan_for, plan_period
from billing_platform.entitlements.repository import counter_key
from billing_platform.errors import RateLimitedError
from billing_platform.quantities import ZERO

logger = logging.getLogger(__name__)


class Mode(Enum):
    """How a plan application treats the usage of the period in force."""

    RENEW = "renew"  # apply_plan: a different (later) period starts afresh
    KEEP = "keep"  # revoke: usage of the live period carries over (no free refill by cancelling)


@dataclass(frozen=True)
class Terms:
    """What one `reconcile` brings the counters to: the plan's quota (None: not in the plan), its period,
    how that period treats the usage in force, and the counters' state."""

    plan: TenantPlan
    quota: ResourceQuota | None
    period: tuple[datetime, datetime]
    mode: Mode
    state: CounterState


def provision(ctx: EntitlementContext, tenant_id: str, resource_type: str) -> int:
    """Create (or align) the tenant's counters for `resource_type` from its plan; the layout in force."""
    plan = plan_for(ctx, tenant_id, fresh=True)
    now = ctx.clock()
    quota = ctx.catalog.plan(plan.plan_id).quota(resource_type)
    period = plan_period(plan, now)
    state = CounterState.SUSPENDED if plan.suspended else CounterState.ACTIVE
    return reconcile(ctx, tenant_id, resource_type, Terms(plan, quota, period, Mode.RENEW, state), only_missing=True)


def reconcile(
    ctx: EntitlementContext, tenant_id: str, resource_type: str, terms: Terms, *, only_missing: bool = False
) -> int:
    """Bring one quota's counters to the plan's terms; returns the layout in force (0: not in plan).

    Same layout: each counter is updated on its own, conditioned on the period end it had, with
    `used` kept unless a later period starts (relative updates: consumers never stall it).
    Another layout: first the old counters are frozen (retired, pointing at the new layout), so
    their `used` is final however busy the quota is; then the new counters are created carrying
    exactly that usage, in one transaction with the directory. Callers that meet the half-way
    state (old frozen, new not yet there) provision the same way, so whoever is first wins and
    nothing is lost or granted twice."""
    target = (terms.plan.counter_shards if terms.quota is not None else 0) or 0
    for _round in range(MAX_ROUNDS):
        now = ctx.clock()
        directory = ctx.repo.get_counter(tenant_id, resource_type)
        if directory is None:
            layout = -1
            current: list[QuotaCounter] = []
        elif directory.state is CounterState.RETIRED:
            layout = directory.current_shards or 0
            keys = [counter_key(tenant_id, resource_type, i, layout) for i in range(layout)] if layout > 1 else []
            current = ctx.repo.get_counters(keys) if keys else []
        else:
            layout, current = 1, [directory]
        live = [c for c in current if c.state is not CounterState.RETIRED]
        complete = layout >= 0 and len(live) == max(layout, 0) and len(current) == max(layout, 0)
        if only_missing and complete:
            # Provisioned meanwhile (or by someone else): nothing to create.
            ctx.layouts.put((tenant_id, resource_type), layout)
            return layout
        if layout == target and target >= 1 and complete:
            if _update_terms(ctx, live, terms, now):
                ctx.layouts.put((tenant_id, resource_type), target)
                return target
            continue
        if layout >= 1 and layout != target and live:
            for counter in live:  # freeze: no consume lands on the old layout after this
                ctx.repo.retire(counter, target, now)
            continue
        if layout == target == 0:
            return 0
        # Where the carried usage is: counters this switch froze (they point at the target; a
        # leftover of an older layout under the same keys never does), else a retired directory
        # (a one-counter layout frozen in place, or a resource that was out of the plan).
        frozen = bool(current) and all(c.current_shards == target for c in current) and layout != target
        if frozen:
            carry_from = current
        elif directory is not None and directory.state is CounterState.RETIRED:
            carry_from = [directory]
        else:
            carry_from = []
        if _switch(ctx, tenant_id, resource_type, directory, current, carry_from, target=target, terms=terms, now=now):
            ctx.layouts.put((tenant_id, resource_type), target)
            logger.info(
                "quota layout set",
                extra={"tenant_id": tenant_id, "resource_type": resource_type, "shards": target},
            )
            return target
    raise RateLimitedError("the quota changed too often while the plan was applied; retry")


def _update_terms(ctx: EntitlementContext, current: list[QuotaCounter], terms: Terms, now: datetime) -> bool:
    quota, plan, state = terms.quota, terms.plan, terms.state
    assert quota is not None
    limits = split_limit(quota.limit if quota.limit is not None else ZERO, len(current))
    for counter in sorted(current, key=lambda c: c.shard):
        reset, start, end = decide_period(counter, terms.period, terms.mode, now)
        if not ctx.repo.set_plan_terms(
            counter,
            limit=limits[counter.shard],
            total_limit=quota.limit,
            policy=quota.policy,
            plan_id=plan.plan_id,
            period_start=start,
            period_end=end,
            reset=reset,
            now=now,
        ):
            return False
        if state is CounterState.SUSPENDED:
            ctx.repo.set_state(counter, CounterState.SUSPENDED, now)
        marker = window_marker(quota.windows)
        if counter.windows != marker:
            _set_windows(ctx, counter, marker, now)
    return True


def _set_windows(ctx: EntitlementContext, counter: QuotaCounter, marker: str, now: datetime) -> None:
    """Bring the counter's short windows to the plan's (`marker`): a window kept keeps what it used in the
    live window against its new limit, a new one starts at the next take, a dropped one goes. Conditioned
    on the marker read, so racing plan applications each apply in turn and none is lost."""
    key = counter_key(counter.tenant_id, counter.resource_type, counter.shard, counter.shards)
    for _round in range(MAX_ROUNDS):
        item = ctx.repo.get_counter_item(key)
        if item is None or item.get("windows", {}).get("S", "") == marker:
            return
        if ctx.repo.set_windows(key, item, marker, now):
            return
    raise RateLimitedError("the quota changed too often while the plan was applied; retry")


def _switch(
    ctx: EntitlementContext,
    tenant_id: str,
    resource_type: str,
    directory: QuotaCounter | None,
    current: list[QuotaCounter],
    carry_from: list[QuotaCounter],
    *,
    target: int,
    terms: Terms,
    now: datetime,
) -> bool:
    quota, plan, state, period = terms.quota, terms.plan, terms.state, terms.period
    seen = {c.shard if c.shards > 1 else -1: c for c in current}
    if directory is not None:
        seen[-1] = directory
    used = sum((c.used for c in carry_from), ZERO)
    start, end = period
    if carry_from:
        reset, start, end = decide_period(combine_shards(carry_from), period, terms.mode, now)
        if reset:
            used = ZERO
    writes: list[tuple[QuotaCounter, QuotaCounter | None]] = []
    marker_of = target
    if quota is not None and target >= 1:
        total = quota.limit if quota.limit is not None else ZERO
        limits = split_limit(total, target)
        useds = spread_used(used, limits)
        for i in range(target):
            slot = i if target > 1 else -1
            writes.append(
                (
                    QuotaCounter(
                        tenant_id=tenant_id,
                        resource_type=resource_type,
                        policy=quota.policy,
                        limit=limits[i],
                        used=useds[i],
                        remaining=limits[i] - useds[i],
                        period_start=start,
                        period_end=end,
                        plan_id=plan.plan_id,
                        state=state,
                        shard=i if target > 1 else 0,
                        shards=target,
                        total_limit=quota.limit,
                        windows=window_marker(quota.windows),
                    ),
                    seen.pop(slot, None),
                )
            )
    if target != 1:
        writes.append(
            (
                QuotaCounter(
                    tenant_id=tenant_id,
                    resource_type=resource_type,
                    policy=quota.policy if quota else QuotaPolicy.HARD,
                    limit=ZERO,
                    used=used,
                    remaining=ZERO,
                    period_start=start,
                    period_end=end,
                    plan_id=plan.plan_id,
                    state=CounterState.RETIRED,
                    current_shards=marker_of,
                ),
                seen.pop(-1, None),
            )
        )
    # Old shards beyond the new layout were frozen already; they just stay retired.
    return ctx.repo.switch_layout(writes, [], now)


def decide_period(
    counter: QuotaCounter, period: tuple[datetime, datetime], mode: Mode, now: datetime
) -> tuple[bool, datetime, datetime]:
    """(reset used?, start, end) for applying `period` to a counter. Never grants a period twice: the
    same period (whoever started it: a lazy rollover or an earlier webhook) keeps its usage, and a
    counter already ahead of `period` keeps its own."""
    start, end = period
    if same_period(counter.period_end, end):
        return False, start, end
    if counter.period_end > end:
        return False, counter.period_start, counter.period_end
    if mode is Mode.KEEP:
        return counter.period_end <= now, start, end
    return True, start, end
