"""The plan's short windows on the tenant's quota counter (`catalog.models.ResourceQuota.windows`): what a
take refused by the counter's condition does about them, and how a window refusal reads.

A plan's windows live on its counter item beside the period counter (`levels`: the marker `windows` and per
window its end, what is left and what was used); reconcile writes the marker with the plan's terms, and
every take (hot path, keyed, with a companion, at the levels, a grant draw) pins the marker this container
last saw and counts each window in the same write as the period quota. When that write is refused, the
counter came back with the refusal, and `window_step` decides from it, without a read:

- the counter carries another marker (cold container, plan changed): remember it, take again;
- a window ended or never started: start it (one conditional UpdateItem: of racing callers, one), take
  again; this is the only request a window costs, once per window per counter;
- a window cannot cover the take: 429 `window_exhausted` with the seconds until that window ends, unless
  the period quota and the tenant's live grants are short too (402: waiting would not help).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from billing_platform.catalog.models import QuotaPolicy, parse_window_marker
from billing_platform.entities.models import TENANT_LEVEL
from billing_platform.entitlements.context import EntitlementContext
from billing_platform.entitlements.models import (
    ConsumeRequest,
    DenyReason,
    EntitlementCheck,
    LevelState,
    QuotaCounter,
    check_from_counter,
)
from billing_platform.entitlements.repository import Item, counter_key, counter_pk
from billing_platform.grants.models import live_balance
from billing_platform.levels import WindowState, epoch, needs_alignment, short_window, window_states
from billing_platform.quantities import ZERO


def window_step(
    ctx: EntitlementContext, request: ConsumeRequest, counter: QuotaCounter, old: Item, now: datetime
) -> EntitlementCheck | bool:
    """For a take refused on `old` (the live, active counter as returned): True to take again, an answer
    (a window refusal), or False when the windows are not why it was refused."""
    pk = counter_pk(counter.tenant_id, counter.resource_type, counter.shard, counter.shards)
    if counter.windows != (ctx.windows.get(pk) or ""):
        ctx.windows.put(pk, counter.windows)
        return True
    windows = parse_window_marker(counter.windows)
    if not windows:
        return False
    if needs_alignment(old, windows, now):
        key = counter_key(counter.tenant_id, counter.resource_type, counter.shard, counter.shards)
        ctx.repo.align_windows(key, old, now)
        return True
    short = short_window(old, request.quantity, now)
    if short is None:
        return False
    if ctx.enforcing and counter.policy is QuotaPolicy.HARD and counter.remaining < request.quantity:
        balance = live_balance(ctx.tenant_grants.list(counter.tenant_id, counter.resource_type), now)
        if counter.remaining + balance < request.quantity:
            denial = check_from_counter(counter, request.quantity, allowed=False, reason=DenyReason.EXHAUSTED)
            return replace(denial, grant_remaining=balance, levels=tuple(window_rows(TENANT_LEVEL, old, now)))
    return window_refusal(counter, request.quantity, short, old, now)


def window_refusal(
    counter: QuotaCounter, quantity: Decimal, short: WindowState, old: Item, now: datetime
) -> EntitlementCheck:
    """429: `short` (a window of the tenant's counter) cannot cover the take; the period quota can."""
    denial = check_from_counter(counter, quantity, allowed=False, reason=DenyReason.WINDOW)
    return replace(
        denial,
        refused_by=TENANT_LEVEL,
        levels=tuple(window_rows(TENANT_LEVEL, old, now)),
        retry_after_seconds=max(1, short.end - epoch(now)),
    )


def window_rows(level: str, item: Item, now: datetime) -> list[LevelState]:
    """What each window of a counting item holds at `now` (a window that ended holds its whole limit)."""
    rows = []
    for state in window_states(item):
        live = state.live(epoch(now))
        remaining = state.remaining if live else state.limit
        rows.append(
            LevelState(
                level,
                state.limit,
                state.limit - remaining,
                max(ZERO, remaining),
                datetime.fromtimestamp(state.end if live else state.window.end_after(epoch(now)), UTC),
                window=state.window.value,
            )
        )
    return rows
