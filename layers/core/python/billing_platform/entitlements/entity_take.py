"""The take that names an entity: one `TransactWriteItems` over every level that carries a limit, from the
entity up through its ancestors to the tenant's quota counter, all or nothing (`levels.commit`).

- Levels: the tenant's counter (the consume path's own update, `dal.counters.take_item`, with the plan's
  short windows), then each entity of the chain with a limit on the resource (its limit item:
  `remaining >= q`, period live, windows live with room), then the caller's companions (an idempotent
  consume's record, a reservation) last. Entities without a limit on the resource cost nothing.
- A refusal is decided from the items DynamoDB returns with it: a counter or window that rolled over is
  started anew (conditionally, so never twice) and the take retried; an outdated chain or window marker
  is re-read and retried; otherwise the level has no room: the take is refused naming it (402 for a
  period, 429 with the window's end for a window), with what every level holds (read for the refusal).
- The tenant's quota is handled as the consume path handles it (`slow_path`: provisioning, period
  rollover, suspension, layout changes; a sharded quota short on its random shard is read whole and the
  take spread over its shards in the same transaction).
- Grants: a hard plan quota (every shard together) short for the take while every entity level has room
  goes on to the tenant's live grants as a tenant-only take does (`past_quota.draw`: the quota gives all it
  has, grants by priority and expiry pay the rest), with the entity levels and the companions in that same
  transaction. Refused naming `tenant` only when the quota and the live grants together are short.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billing_platform.catalog.models import QuotaPolicy, Window, parse_window_marker
from billing_platform.entities.models import TENANT_LEVEL, level_name
from billing_platform.entities.repository import EntityRepository, limit_key
from billing_platform.entitlements.context import MAX_ROUNDS, EntitlementContext
from billing_platform.entitlements.dal.counters import take_item
from billing_platform.entitlements.models import (
    ConsumeRequest,
    CounterState,
    DenyReason,
    EntitlementCheck,
    LevelState,
    QuotaCounter,
    check_from_counter,
    combine_shards,
    layout_live,
)
from billing_platform.entitlements.past_quota import draw
from billing_platform.entitlements.plans import plan_for, plan_period
from billing_platform.entitlements.repository import counter_from_item, counter_key, counter_pk
from billing_platform.entitlements.slow_path import plan_shares, slow_path
from billing_platform.entitlements.views import read_quota
from billing_platform.entitlements.windows import window_rows
from billing_platform.errors import RateLimitedError, UnprocessableError
from billing_platform.grants.models import DrawPlan, live_balance
from billing_platform.instants import to_epoch
from billing_platform.levels import (
    WINDOWS_ATTRIBUTE,
    Item,
    Level,
    align_windows,
    commit,
    epoch,
    needs_alignment,
    short_window,
    with_windows,
)
from billing_platform.quantities import ZERO

Shares = tuple[tuple[int, Decimal], ...]
GrantsPaid = tuple[tuple[str, Decimal], ...]  # (grant id, quantity) in draw order
# Builds the companion items of a take at `now` over these tenant shares of this layout, counted at these
# entities, with these grants paying what the quota could not: appended after the levels, in this order.
Companions = Callable[[datetime, Shares, int, tuple[str, ...], GrantsPaid], list[dict[str, Any]]]


@dataclass(frozen=True)
class LevelRequest:
    """A take of `quantity` of `resource_type` for `tenant_id`, counted at `entity_id` and its ancestors."""

    tenant_id: str
    resource_type: str
    quantity: Decimal
    entity_id: str


@dataclass(frozen=True)
class LevelTaken:
    """`granted`: counted at every level (and the companions written). Else `denial` is the refusal, or
    `existing` the item a companion's condition found (a retried idempotent take)."""

    granted: bool
    shares: Shares = ()
    layout: int = 1
    entities: tuple[str, ...] = ()
    taken_at: datetime | None = None
    denial: EntitlementCheck | None = None
    existing: Item | None = None
    existing_index: int = -1
    grants: GrantsPaid = ()
    grant_remaining: Decimal | None = None


def entities_of(ctx: EntitlementContext) -> EntityRepository:
    return EntityRepository(ctx.settings, ctx.repo.injected_client)


def chain_for(
    ctx: EntitlementContext, tenant_id: str, entity_id: str, resource_type: str, *, fresh: bool = False
) -> tuple[tuple[str, str], ...]:
    """The entities from `entity_id` up that limit `resource_type`, nearest first, each with its window
    marker (cached for the context's TTL). 422 `unknown_entity` for an entity the tenant does not have."""
    key = (tenant_id, entity_id, resource_type)
    if not fresh:
        cached = ctx.entity_chains.get(key)
        if cached is not None:
            return cached
    repo = entities_of(ctx)
    entity = repo.get(tenant_id, entity_id)
    if entity is None:
        raise UnprocessableError(
            f"unknown entity {entity_id!r}", code="unknown_entity", details={"entity_id": entity_id}
        )
    found = repo.get_many(tenant_id, list(entity.ancestors))
    found[entity_id] = entity
    limiting = [e for e in entity.chain if e in found and resource_type in found[e].limited]
    items = repo.get_limit_items([limit_key(tenant_id, e, resource_type) for e in limiting])
    markers = {i["entity_id"]["S"]: i.get(WINDOWS_ATTRIBUTE, {}).get("S", "") for i in items}
    chain = tuple((e, markers[e]) for e in limiting if e in markers)
    ctx.entity_chains.put(key, chain)
    return chain


def _tenant_item(
    ctx: EntitlementContext, req: LevelRequest, shard: int, part: Decimal, layout: int, now: datetime
) -> Item:
    key = counter_key(req.tenant_id, req.resource_type, shard, layout)
    marker = ctx.windows.get(counter_pk(req.tenant_id, req.resource_type, shard, layout)) or ""
    return take_item(ctx.repo._table, key, part, now, enforce=ctx.enforcing, windows=marker)


def entity_item(table: str, key: Item, quantity: Decimal, now: datetime, *, enforce: bool, marker: str) -> Item:
    """An entity level of a take: its period live and, with `enforce`, `quantity` left; its windows (as
    `marker` names them) live with room; the item returned when a condition fails."""
    condition = "#pe > :now"
    if enforce:
        condition += " AND #rem >= :q"
    expression = {
        "UpdateExpression": "SET #rem = #rem - :q, #used = #used + :q",
        "ConditionExpression": condition,
        "ExpressionAttributeNames": {"#rem": "remaining", "#used": "used", "#pe": "period_end"},
        "ExpressionAttributeValues": {":q": {"N": format(quantity, "f")}, ":now": {"N": str(to_epoch(now))}},
    }
    expression = with_windows(expression, parse_window_marker(marker))
    return {"Update": {"TableName": table, "Key": key, "ReturnValuesOnConditionCheckFailure": "ALL_OLD", **expression}}


# ------------------------------------------------------------------------------------------------ take


@dataclass
class _Round:
    """What one refused transaction asks for next."""

    retry: bool = False
    layout: int | None = None
    shares: Shares | None = None
    denial: EntitlementCheck | None = None
    refusals: list[tuple[str, Window | None, int | None]] | None = None  # (level, window, window end)
    short: list[QuotaCounter] | None = None  # the plan quota (every shard, as read) is short: grants may pay


def take_at_levels(ctx: EntitlementContext, req: LevelRequest, companions: Companions | None = None) -> LevelTaken:
    """Count `req.quantity` at every level that limits it, with the companions, all or nothing."""
    layout = ctx.layouts.get((req.tenant_id, req.resource_type)) or 1
    planned: Shares | None = None
    fresh_chain = False
    for round_ in range(MAX_ROUNDS):
        now = ctx.clock()
        chain = chain_for(ctx, req.tenant_id, req.entity_id, req.resource_type, fresh=fresh_chain)
        fresh_chain = False
        shares = planned or (((ctx.rng.randrange(layout) if layout > 1 else 0), req.quantity),)
        levels = [Level(TENANT_LEVEL, _tenant_item(ctx, req, s, q, layout, now)) for s, q in shares]
        tenant_count = len(levels)
        for entity_id, marker in chain:
            key = limit_key(req.tenant_id, entity_id, req.resource_type)
            item = entity_item(ctx.repo._table, key, req.quantity, now, enforce=ctx.enforcing, marker=marker)
            levels.append(Level(level_name(entity_id), item, entity_id=entity_id))
        counted = tuple(e for e, _m in chain)
        if companions is not None:
            levels += [Level("companion", i, counting=False) for i in companions(now, shares, layout, counted, ())]
        outcome = commit(ctx.repo.client, levels)
        if outcome.applied:
            return LevelTaken(True, shares=shares, layout=layout, entities=counted, taken_at=now)
        if outcome.conflict:
            time.sleep(ctx.rng.uniform(0, 0.002 * (round_ + 1)))
            continue
        for index, old in outcome.refused.items():
            if not levels[index].counting:
                return LevelTaken(False, existing=old, existing_index=index - len(levels))
        decision = _Round(refusals=[])
        for index, old in sorted(outcome.refused.items()):
            level = levels[index]
            if index < tenant_count:
                _tenant_refused(ctx, req, shares, layout, old, now=now, out=decision)
            else:
                fresh_chain |= _entity_refused(ctx, req, level, old, now, decision)
        if decision.denial is not None:
            return LevelTaken(False, denial=decision.denial)
        if decision.short is not None and not decision.retry and not fresh_chain:
            entity_levels = [level for level in levels[tenant_count:] if level.counting]
            drawn = _draw_at_levels(ctx, req, decision.short, entity_levels, companions, decision)
            if drawn is not None:
                return drawn
        if decision.layout is not None:
            layout, planned = decision.layout, None
        if decision.shares is not None:
            planned = decision.shares
        if decision.retry or fresh_chain or decision.layout is not None or decision.shares is not None:
            continue
        if decision.refusals:
            return LevelTaken(False, denial=refusal(ctx, req, decision.refusals, now))
        # Refused, but nothing in the returned items explains it: another take changed them; again.
    raise RateLimitedError("the quota is under heavy contention; retry shortly")


def _tenant_refused(
    ctx: EntitlementContext,
    req: LevelRequest,
    shares: Shares,
    layout: int,
    old: Item | None,
    *,
    now: datetime,
    out: _Round,
) -> None:
    enforce = ctx.enforcing
    counter = counter_from_item(old) if old is not None else None
    if counter is None or counter.state is not CounterState.ACTIVE or counter.period_end <= now:
        # Provisioning, a retired or suspended counter, a period over: as the consume path decides.
        plain = ConsumeRequest(req.tenant_id, req.resource_type, req.quantity)
        decided = slow_path(ctx, plain, old, shards=layout, now=now)
        if isinstance(decided, EntitlementCheck):
            out.denial = replace(decided, entity_id=req.entity_id, refused_by=TENANT_LEVEL)
        else:
            out.layout = decided
        return
    assert old is not None
    pk = counter_pk(req.tenant_id, req.resource_type, counter.shard, counter.shards)
    marker = old.get(WINDOWS_ATTRIBUTE, {}).get("S", "")
    if marker != (ctx.windows.get(pk) or ""):
        ctx.windows.put(pk, marker)
        out.retry = True
        return
    windows = parse_window_marker(marker)
    if windows and needs_alignment(old, windows, now):
        align_windows(
            ctx.repo.client,
            ctx.repo._table,
            counter_key(req.tenant_id, req.resource_type, counter.shard, counter.shards),
            old,
            windows,
            now,
        )
        out.retry = True
        return
    part = dict(shares).get(counter.shard, req.quantity)
    short = short_window(old, part, now)
    if short is not None:
        assert out.refusals is not None
        out.refusals.append((TENANT_LEVEL, short.window, short.end))
        if enforce and counter.policy is QuotaPolicy.HARD and counter.remaining < req.quantity:
            # The period is short too: named before the window (402) unless the grants would pay it.
            balance = live_balance(ctx.tenant_grants.list(req.tenant_id, req.resource_type), now)
            if counter.remaining + balance < req.quantity:
                out.refusals.insert(0, (TENANT_LEVEL, None, None))
        return
    if layout > 1:
        counters = ctx.repo.get_layout(req.tenant_id, req.resource_type, layout)
        if not layout_live(counters, layout, now):
            out.retry = True
            return
        total = combine_shards(counters)
        if enforce and total.policy is QuotaPolicy.HARD and total.remaining < req.quantity:
            out.short = counters
            return
        out.shares = tuple((c.shard, q) for c, q in plan_shares(counters, req.quantity, total, enforce))
        return
    if enforce and counter.policy is QuotaPolicy.HARD and counter.remaining < req.quantity:
        out.short = [counter]
        return
    out.retry = True


def _draw_at_levels(
    ctx: EntitlementContext,
    req: LevelRequest,
    counters: list[QuotaCounter],
    entity_levels: list[Level],
    companions: Companions | None,
    decision: _Round,
) -> LevelTaken | None:
    """The plan quota (`counters`, every shard as read) is short: when no entity level refused, take what it
    has plus live grants (`past_quota.draw`) with the entity levels and the companions, in one transaction.
    A refusal: the entity's own when one refused (and the grants would have covered the tenant), else the
    tenant's when quota and grants are short. None: something changed, take again."""
    assert decision.refusals is not None
    now = ctx.clock()
    layout = counters[0].shards
    if decision.refusals:
        # An entity level has no room: name it, unless the tenant is short even with its grants.
        balance = live_balance(ctx.tenant_grants.list(req.tenant_id, req.resource_type), now)
        if sum((max(ZERO, c.remaining) for c in counters), ZERO) + balance < req.quantity:
            decision.refusals.insert(0, (TENANT_LEVEL, None, None))
        return LevelTaken(False, denial=refusal(ctx, req, decision.refusals, now, grant_remaining=balance))
    paid: Shares = tuple((c.shard, c.remaining) for c in counters if c.remaining > 0)
    counted = tuple(level.entity_id for level in entity_levels if level.entity_id is not None)
    made: list[int] = [0]

    def level_items(plan: DrawPlan, _balance: Decimal) -> list[dict[str, Any]]:
        items = [level.item for level in entity_levels]
        if companions is not None:
            items += companions(now, paid, layout, counted, plan.drawn())
        made[0] = len(items)
        return items

    outcome = draw(ctx, counters, req.quantity, now, record_put=level_items)
    if outcome.short:
        refused = refusal(ctx, req, [(TENANT_LEVEL, None, None)], now, grant_remaining=outcome.grant_balance)
        return LevelTaken(False, denial=refused)
    if outcome.granted and outcome.plan is not None:
        return LevelTaken(
            True,
            shares=paid,
            layout=layout,
            entities=counted,
            taken_at=now,
            grants=outcome.plan.drawn(),
            grant_remaining=outcome.grant_balance - outcome.plan.grant_total,
        )
    if outcome.existing_record and outcome.record_index >= len(entity_levels) and outcome.existing_item is not None:
        return LevelTaken(False, existing=outcome.existing_item, existing_index=outcome.record_index - made[0])
    # An entity level, a window, a shard or a grant moved under the plan: the next round reads them again.
    time.sleep(ctx.rng.uniform(0, 0.002))
    return None


def _entity_refused(
    ctx: EntitlementContext, req: LevelRequest, level: Level, old: Item | None, now: datetime, out: _Round
) -> bool:
    """Decide about one refused entity level; True when the chain must be read again."""
    assert level.entity_id is not None
    assert out.refusals is not None
    if old is None:
        return True  # the limit was removed: the chain no longer has this level
    key = limit_key(req.tenant_id, level.entity_id, req.resource_type)
    marker = old.get(WINDOWS_ATTRIBUTE, {}).get("S", "")
    cached = dict(chain_for(ctx, req.tenant_id, req.entity_id, req.resource_type))
    if marker != cached.get(level.entity_id, ""):
        return True
    period_end = int(old["period_end"]["N"])
    if period_end <= epoch(now):
        entities_of(ctx).roll_period(key, period_end, plan_period(plan_for(ctx, req.tenant_id), now))
        out.retry = True
        return False
    windows = parse_window_marker(marker)
    if windows and needs_alignment(old, windows, now):
        align_windows(ctx.repo.client, ctx.repo._table, key, old, windows, now)
        out.retry = True
        return False
    short = short_window(old, req.quantity, now)
    if short is not None:
        out.refusals.append((level.name, short.window, short.end))
        return False
    remaining = Decimal(old["remaining"]["N"])
    if ctx.enforcing and remaining < req.quantity:
        out.refusals.append((level.name, None, None))
        return False
    out.retry = True
    return False


# ------------------------------------------------------------------------------------------------ answers


def refusal(
    ctx: EntitlementContext,
    req: LevelRequest,
    refusals: list[tuple[str, Window | None, int | None]],
    now: datetime,
    *,
    grant_remaining: Decimal | None = None,
    read: tuple[tuple[LevelState, ...], QuotaCounter] | None = None,
) -> EntitlementCheck:
    """The refusal of a take: a period refusal (402) names its level before any window (429): retrying
    after a window ends would not help a period that is used up. Every level's state is read for it (unless
    `read` already holds them)."""
    periods = [r for r in refusals if r[1] is None]
    level, window, end = periods[0] if periods else max(refusals, key=lambda r: r[2] or 0)
    states, tenant = read or level_states(ctx, req, now)
    reason = DenyReason.EXHAUSTED if window is None else DenyReason.WINDOW
    answer = check_from_counter(tenant, req.quantity, allowed=False, reason=reason)
    retry_after = max(1, (end or 0) - epoch(now)) if window is not None else None
    return replace(
        answer,
        entity_id=req.entity_id,
        refused_by=level,
        levels=states,
        retry_after_seconds=retry_after,
        grant_remaining=grant_remaining,
    )


def level_states(
    ctx: EntitlementContext, req: LevelRequest, now: datetime
) -> tuple[tuple[LevelState, ...], QuotaCounter]:
    """What every level holds now (the tenant's quota as one counter, each limited entity, their windows)."""
    tenant = read_quota(ctx, req.tenant_id, req.resource_type)
    if tenant is None:
        raise UnprocessableError(f"{req.resource_type!r} is not in the tenant's plan", code="not_in_plan")
    unlimited = tenant.policy is QuotaPolicy.UNLIMITED
    states = [
        LevelState(
            TENANT_LEVEL,
            None if unlimited else (tenant.total_limit if tenant.total_limit is not None else tenant.limit),
            tenant.used,
            None if unlimited else max(ZERO, tenant.remaining),
            tenant.period_end,
        )
    ]
    directory = ctx.repo.get_counter_item(counter_key(req.tenant_id, req.resource_type))
    if directory is not None:
        states += window_rows(TENANT_LEVEL, directory, now)
    chain = chain_for(ctx, req.tenant_id, req.entity_id, req.resource_type, fresh=True)
    repo = entities_of(ctx)
    items = {
        i["entity_id"]["S"]: i
        for i in repo.get_limit_items([limit_key(req.tenant_id, e, req.resource_type) for e, _m in chain])
    }
    for entity_id, _marker in chain:
        item = items.get(entity_id)
        if item is None:
            continue
        ended = int(item["period_end"]["N"]) <= epoch(now)
        limit = Decimal(item["limit"]["N"])
        used = ZERO if ended else Decimal(item["used"]["N"])
        states.append(
            LevelState(
                level_name(entity_id),
                limit,
                used,
                max(ZERO, limit - used),
                datetime.fromtimestamp(int(item["period_end"]["N"]), UTC),
            )
        )
        states += window_rows(level_name(entity_id), item, now)
    return tuple(states), tenant


def granted_answer(
    ctx: EntitlementContext, req: LevelRequest, taken: LevelTaken, *, remember: bool = True
) -> EntitlementCheck:
    """The answer to a granted take. A transaction returns no item: the tenant's numbers are estimated from
    the counter this container saw last (read once when it has none), so the answer is approximate."""
    shard = taken.shares[0][0] if taken.shares else 0
    from_quota = sum((q for _s, q in taken.shares), ZERO)  # a grant draw: the quota paid part of it
    pk = counter_pk(req.tenant_id, req.resource_type, shard, taken.layout)
    seen = ctx.counters.get(pk)
    if seen is None:
        seen = ctx.repo.get_counter(req.tenant_id, req.resource_type, shard, taken.layout)
    if seen is None:
        raise RuntimeError("counter vanished after a granted take")
    after = replace(seen, used=seen.used + from_quota, remaining=seen.remaining - from_quota)
    if remember:
        ctx.counters.put(pk, after)
    view = after
    if taken.layout > 1:
        view = replace(after, used=after.used * taken.layout, remaining=after.remaining * taken.layout)
    answer = check_from_counter(
        view, req.quantity, allowed=True, enforced=ctx.enforcing, approximate=True, shards_used=taken.shares
    )
    return replace(answer, entity_id=req.entity_id, grants_used=taken.grants, grant_remaining=taken.grant_remaining)


def check_levels(ctx: EntitlementContext, req: LevelRequest) -> EntitlementCheck:
    """Would a take of `req.quantity` at every level pass now? Reads every level; writes nothing."""
    now = ctx.clock()
    states, tenant = level_states(ctx, req, now)
    refusals: list[tuple[str, Window | None, int | None]] = []
    enforce = ctx.enforcing
    if tenant.state is not CounterState.ACTIVE or not tenant.allows(req.quantity, now, enforce=enforce):
        refusals.append((TENANT_LEVEL, None, None))
    for state in states:
        if state.level == TENANT_LEVEL and state.window is None:
            continue
        if state.remaining is not None and state.remaining < req.quantity and (enforce or state.window):
            end = epoch(state.resets_at) if state.resets_at else None
            refusals.append((state.level, Window(state.window) if state.window else None, end))
    if not refusals:
        answer = check_from_counter(tenant, req.quantity, allowed=True, enforced=enforce)
        return replace(answer, entity_id=req.entity_id, levels=states)
    return refusal(ctx, req, refusals, now, read=(states, tenant))
