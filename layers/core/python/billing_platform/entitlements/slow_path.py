"""Why a consume's condition failed, and what to do about it, from the item DynamoDB returned:

- no item: the quota was never provisioned; create it from the tenant's plan (or the catalog's
  default plan for a tenant without a subscription) and retry;
- RETIRED: the layout changed (its `current_shards` says to what) or the resource left the plan;
- SUSPENDED: denied (past due beyond grace / unpaid);
- period over: roll the counter into the period containing now, conditioned on the period end seen,
  so of several racing resets exactly one applies; retry;
- the plan's short windows: an outdated marker, a window to start, or a window short for the take
  (`windows.window_step`: retry, or 429 with the window's end);
- otherwise the quota is short for this take: a hard quota goes on to `past_quota` (what it has left
  plus the tenant's live grants, one transaction; denied with exact numbers when both are short).

Sharded quotas (plan `counter_shards` > 1) split the limit over N items with their own partition keys.
A take goes to one random shard (one request); when that shard cannot cover it, all shards are read
and the take goes to a shard that can, or is spread over several in one transaction. A denial is
only ever given when the shards read together, and the tenant's live grants, have less than the quantity.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from billing_platform.catalog.models import QuotaPolicy
from billing_platform.entitlements.answers import granted, not_in_plan, suspended_answer
from billing_platform.entitlements.context import MAX_ROUNDS, EntitlementContext
from billing_platform.entitlements.models import (
    ConsumeRequest,
    CounterState,
    DenyReason,
    EntitlementCheck,
    QuotaCounter,
    advance_period,
    check_from_counter,
    combine_shards,
)
from billing_platform.entitlements.past_quota import take_past_quota
from billing_platform.entitlements.reconcile import provision
from billing_platform.entitlements.records import answer_keyed, new_record, replay
from billing_platform.entitlements.repository import Item, KeyedTake, counter_from_item, counter_key
from billing_platform.entitlements.windows import window_step
from billing_platform.errors import RateLimitedError

logger = logging.getLogger(__name__)


def slow_path(
    ctx: EntitlementContext,
    request: ConsumeRequest,
    old: Item | None,
    *,
    shards: int,
    now: datetime,
    draw_grants: bool = False,
) -> EntitlementCheck | int:
    """Why the hot-path condition failed on `old` (the counter as DynamoDB returned it; None: no counter)
    for a take from a `shards`-wide layout at `now`, and what to do: a final answer, or the layout to retry.
    `draw_grants`: a hard quota short for the take goes on to the tenant's grants (`past_quota`), which
    COMMITS the take; only a caller whose take is complete without a companion write (consume) asks."""
    tenant_id, resource_type, quantity = request.tenant_id, request.resource_type, request.quantity
    enforce = ctx.enforcing
    if old is None:
        return provision(ctx, tenant_id, resource_type)
    counter = counter_from_item(old)
    if counter.state is CounterState.RETIRED:
        # The directory (unsharded key) names the layout in force. A retired shard may be a leftover
        # of an older layout, so its pointer is not trusted: ask the directory (and finish a
        # half-done layout switch on the way).
        current = counter.current_shards if counter.shards <= 1 else None
        if current is None or current == shards:
            current = provision(ctx, tenant_id, resource_type)
        if current == 0:
            return not_in_plan(tenant_id, resource_type, quantity, enforce)
        ctx.layouts.put((tenant_id, resource_type), current)
        return current
    if counter.state is CounterState.SUSPENDED:
        return suspended_answer(counter, quantity, enforce, shards)
    if counter.period_end <= now:
        roll(ctx, counter, now)
        return shards
    windowed = window_step(ctx, request, counter, old, now)
    if isinstance(windowed, EntitlementCheck):
        return windowed
    if windowed:
        return shards
    if shards > 1:
        return _consume_spread(ctx, request, shards=shards, draw_grants=draw_grants)
    if draw_grants and enforce and counter.policy is QuotaPolicy.HARD:
        # Exhausted for this take: the tenant's grants may cover the rest (or the denial is exact).
        return take_past_quota(ctx, request, [counter], shards=shards)
    logger.info(
        "quota exhausted",
        extra={"tenant_id": tenant_id, "resource_type": resource_type, "remaining": str(counter.remaining)},
    )
    return check_from_counter(counter, quantity, allowed=False, reason=DenyReason.EXHAUSTED)


def _consume_spread(
    ctx: EntitlementContext, request: ConsumeRequest, *, shards: int, draw_grants: bool
) -> EntitlementCheck | int:
    """The sharded fallback: read every shard, take from one that covers the quantity, else spread
    the take over several in one transaction; deny only when all of them together fall short."""
    tenant_id, resource_type, quantity = request.tenant_id, request.resource_type, request.quantity
    enforce = ctx.enforcing
    for _round in range(MAX_ROUNDS):
        now = ctx.clock()
        counters = ctx.repo.get_layout(tenant_id, resource_type, shards)
        if len(counters) != shards or any(c.state is CounterState.RETIRED for c in counters):
            return provision(ctx, tenant_id, resource_type)
        expired = [c for c in counters if c.period_end <= now]
        if expired:
            for counter in expired:
                roll(ctx, counter, now)
            continue
        suspended = [c for c in counters if c.state is CounterState.SUSPENDED]
        if suspended:
            return suspended_answer(combine_shards(counters), quantity, enforce, shards)
        total = combine_shards(counters)
        if enforce and total.policy is QuotaPolicy.HARD and total.remaining < quantity:
            if draw_grants:
                # Every shard together is short: the tenant's grants may cover the rest (or deny, exactly).
                return take_past_quota(ctx, request, counters, shards=shards)
            logger.info("sharded quota exhausted", extra={"tenant_id": tenant_id, "resource_type": resource_type})
            return check_from_counter(total, quantity, allowed=False, reason=DenyReason.EXHAUSTED)
        takes = plan_shares(counters, quantity, total, enforce)
        shares = tuple((c.shard, q) for c, q in takes)
        record = new_record(request, now, shares, shards) if request.idempotency_key is not None else None
        if len(takes) == 1 and record is None:
            counter, take = takes[0]
            key = counter_key(tenant_id, resource_type, counter.shard, shards)
            after, _old = ctx.repo.consume(key, take, now, enforce=enforce)
            if after is not None:
                return granted(after, quantity, enforce, shards, ((counter.shard, take),), None)
            continue
        outcome: KeyedTake = ctx.repo.take_from_shards(takes, now, record)
        if outcome.existing_record is not None:
            return replay(ctx, outcome.existing_record, request)
        if outcome.granted:
            if request.idempotency_key is not None:
                return answer_keyed(ctx, request, shares, shards)
            after_total = replace(total, used=total.used + quantity, remaining=total.remaining - quantity)
            return check_from_counter(
                after_total, quantity, allowed=True, enforced=enforce, approximate=True, shards_used=shares
            )
        time.sleep(ctx.rng.uniform(0, 0.005))  # a racing transaction held a shard: let it finish
    raise RateLimitedError("the quota is under heavy contention; retry shortly")


def plan_shares(
    counters: list[QuotaCounter], quantity: Decimal, total: QuotaCounter, enforce: bool
) -> list[tuple[QuotaCounter, Decimal]]:
    """Where a sharded take goes once all shards were read (and together cover it): the richest shard
    when it covers the quantity (or the quota is not a hard one), else spread over the richest ones.
    Shared by the consume fallback and the take with a companion (`entitlements.take`)."""
    richest = max(counters, key=lambda c: c.remaining)
    if richest.remaining >= quantity or total.policy is not QuotaPolicy.HARD or not enforce:
        return [(richest, quantity)]
    takes: list[tuple[QuotaCounter, Decimal]] = []
    left = quantity
    for counter in sorted(counters, key=lambda c: c.remaining, reverse=True):
        part = min(left, counter.remaining)
        if part > 0:
            takes.append((counter, part))
            left -= part
        if left <= 0:
            break
    return takes


def roll(ctx: EntitlementContext, counter: QuotaCounter, now: datetime) -> None:
    start, end = advance_period(counter.period_start, counter.period_end, now)
    if ctx.repo.rollover(counter, start, end, now):
        logger.info(
            "quota period rolled over",
            extra={
                "tenant_id": counter.tenant_id,
                "resource_type": counter.resource_type,
                "period_end": end.isoformat(),
            },
        )
