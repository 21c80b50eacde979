"""A take of quota committed together with a companion write, in one transaction: how a reservation
holds its estimate and how a settle takes its extra (and the seam for anything else that must be recorded
atomically with a take).

It is the consume path with one more item in the transaction: the same counter update
(`dal.counters.take_item`: same policies, same `remaining >= :q` on hard quotas, same period and state
guard), the same `slow_path` when that condition fails (provision, roll the period over, follow a layout
change, deny with exact numbers), the same shard choice (`plan_shares`) when a sharded quota's random
shard cannot cover it. One request when the first shard covers it.

A HARD quota (all shards together) short of the quantity goes on to the tenant's live grants, as a consume
does (`past_quota.draw`): the counters give all they have, the grants the rest in draw order, and the companion
is the last item of that same transaction, told which grants paid how much. So a hold never exists without
its draw, nor a draw without the hold that must give it back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing_platform.catalog.models import QuotaPolicy
from billing_platform.entitlements.context import MAX_ROUNDS, EntitlementContext
from billing_platform.entitlements.models import (
    ConsumeRequest,
    CounterState,
    DenyReason,
    EntitlementCheck,
    QuotaCounter,
    check_from_counter,
    combine_shards,
    layout_live,
)
from billing_platform.entitlements.past_quota import draw
from billing_platform.entitlements.repository import Item, counter_from_item, counter_key, counter_pk
from billing_platform.entitlements.slow_path import plan_shares, slow_path
from billing_platform.errors import RateLimitedError
from billing_platform.grants.models import DrawPlan

Shares = tuple[tuple[int, Decimal], ...]
GrantsPaid = tuple[tuple[str, Decimal], ...]  # (grant id, quantity) in draw order
# Builds the companion's transaction item (or items) for a take at `now` from these shards of this layout
# and these grants (empty unless the quota was short).
Companion = Callable[[datetime, Shares, int, GrantsPaid], dict[str, Any] | list[dict[str, Any]]]


def companion_items(made: dict[str, Any] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return made if isinstance(made, list) else [made]


@dataclass(frozen=True)
class Taken:
    """`granted`: the quantity was taken and the companion written. Otherwise `existing` is the item the
    companion's condition found (a retried reserve, an already resolved reservation; `companion_index`
    says which of several companion items it is), or `denial` is the final refusal with the quota's exact
    numbers."""

    granted: bool
    shares: Shares = ()
    grants: GrantsPaid = ()
    layout: int = 1
    taken_at: datetime | None = None
    denial: EntitlementCheck | None = None
    existing: Item | None = None
    companion_index: int = 0


class _Conflict:
    """Another transaction held one of the items: try again."""


_CONFLICT = _Conflict()


def take(ctx: EntitlementContext, request: ConsumeRequest, companion: Companion) -> Taken:
    """Take the request's quantity (validated by the caller) and write the companion, all or nothing."""
    enforce = ctx.enforcing
    shards = ctx.layouts.get((request.tenant_id, request.resource_type)) or 1
    for _round in range(MAX_ROUNDS):
        now = ctx.clock()
        shard = ctx.rng.randrange(shards) if shards > 1 else 0
        outcome = _commit(ctx, request, ((shard, request.quantity),), companion, layout=shards, now=now)
        if isinstance(outcome, Taken):
            return outcome
        if outcome is _CONFLICT:
            continue
        old = outcome if isinstance(outcome, dict) else None
        counter = counter_from_item(old) if old is not None else None
        if shards > 1 and counter is not None and counter.state is CounterState.ACTIVE and counter.period_end > now:
            # The chosen shard is short: look at all of them (slow_path's own fallback would consume
            # without the companion).
            spread = _spread(ctx, request, companion, shards=shards)
            if spread is not None:
                return spread
            continue
        decided = slow_path(ctx, request, old, shards=shards, now=now)
        if isinstance(decided, EntitlementCheck):
            if not _exhausted_hard(decided, enforce):
                return Taken(granted=False, denial=decided)
            # The refused transaction returned the counter: the draw is conditioned on it being as seen.
            seen = [counter] if shards == 1 and counter is not None else None
            past = _past_quota(ctx, request, seen, companion, shards=shards)
            if isinstance(past, Taken):
                return past
            decided = past
        shards = decided
    raise RateLimitedError("the quota is under heavy contention; retry shortly")


def _commit(
    ctx: EntitlementContext,
    request: ConsumeRequest,
    shares: Shares,
    companion: Companion,
    *,
    layout: int,
    now: datetime,
) -> Taken | Item | _Conflict | None:
    """One transaction: every share's take, then the companion. Returns the outcome, the counter item
    whose condition failed (None: no counter yet), or _CONFLICT."""
    items = [
        ctx.repo.take_request(
            counter_key(request.tenant_id, request.resource_type, shard, layout),
            part,
            now,
            enforce=ctx.enforcing,
            windows=ctx.windows.get(counter_pk(request.tenant_id, request.resource_type, shard, layout)) or "",
        )
        for shard, part in shares
    ]
    extra = companion_items(companion(now, shares, layout, ()))
    first = len(items)
    items.extend(extra)
    refused = ctx.repo.commit(items)
    if refused is None:
        return Taken(granted=True, shares=shares, layout=layout, taken_at=now)
    for index in range(first, len(items)):
        if index in refused.failed:
            return Taken(granted=False, existing=refused.item(index), companion_index=index - first)
    if refused.failed:
        return refused.item(min(refused.failed))  # a counter's condition failed: the item says why
    return _CONFLICT


def _spread(ctx: EntitlementContext, request: ConsumeRequest, companion: Companion, *, shards: int) -> Taken | None:
    """Read every shard and take where `plan_shares` says; deny only when all of them together fall short.
    None: the layout or a period changed meanwhile (the caller starts over through the slow path)."""
    enforce = ctx.enforcing
    for _round in range(MAX_ROUNDS):
        now = ctx.clock()
        counters = ctx.repo.get_layout(request.tenant_id, request.resource_type, shards)
        if not layout_live(counters, shards, now):
            return None
        total = combine_shards(counters)
        if enforce and total.policy is QuotaPolicy.HARD and total.remaining < request.quantity:
            past = _past_quota(ctx, request, counters, companion, shards=shards)
            return past if isinstance(past, Taken) else None
        shares = tuple((c.shard, part) for c, part in plan_shares(counters, request.quantity, total, enforce))
        outcome = _commit(ctx, request, shares, companion, layout=shards, now=now)
        if isinstance(outcome, Taken):
            return outcome
        time.sleep(ctx.rng.uniform(0, 0.005))  # a racing take changed a shard: read again
    raise RateLimitedError("the quota is under heavy contention; retry shortly")


def _exhausted_hard(denial: EntitlementCheck, enforce: bool) -> bool:
    return (
        enforce and not denial.allowed and denial.reason is DenyReason.EXHAUSTED and denial.policy is QuotaPolicy.HARD
    )


def _past_quota(
    ctx: EntitlementContext,
    request: ConsumeRequest,
    seen: list[QuotaCounter] | None,
    companion: Companion,
    *,
    shards: int,
) -> Taken | int:
    """The quota (every shard) is short: what it has left plus live grants, with the companion, in one
    transaction (`past_quota.draw`). The final denial carries `grant_remaining`. An int is the layout for
    the caller's loop (a period over, a suspension, a new layout, or the quota covering it after all)."""
    quantity = request.quantity
    counters = seen
    for round_ in range(MAX_ROUNDS):
        now = ctx.clock()
        if counters is None:
            counters = ctx.repo.get_layout(request.tenant_id, request.resource_type, shards)
        if not layout_live(counters, shards, now):
            return shards
        total = combine_shards(counters) if shards > 1 else counters[0]
        if total.remaining >= quantity:
            return shards  # a give-back or a rollover meanwhile: the plain take again
        paid: Shares = tuple((c.shard, c.remaining) for c in counters if c.remaining > 0)

        def companion_put(
            plan: DrawPlan, _balance: Decimal, at: datetime = now, paid: Shares = paid
        ) -> list[dict[str, Any]]:
            return companion_items(companion(at, paid, shards, plan.drawn()))

        outcome = draw(ctx, counters, quantity, now, record_put=companion_put)
        if outcome.short:
            denial = check_from_counter(total, quantity, allowed=False, reason=DenyReason.EXHAUSTED)
            return Taken(granted=False, denial=replace(denial, grant_remaining=outcome.grant_balance))
        if outcome.granted and outcome.plan is not None:
            grants = outcome.plan.drawn()
            return Taken(granted=True, shares=paid, grants=grants, layout=shards, taken_at=now)
        if outcome.existing_record and outcome.existing_item is not None:
            return Taken(granted=False, existing=outcome.existing_item, companion_index=outcome.record_index)
        if counters[0].windows:
            return shards  # a window may be what refused it: the take's loop decides (windows.window_step)
        counters = None
        # Something changed under the plan (or a concurrent transaction held an item): back off a little.
        time.sleep(ctx.rng.uniform(0, 0.002 * (round_ + 1)))
    raise RateLimitedError("the quota and its grants are under heavy contention; retry shortly")
