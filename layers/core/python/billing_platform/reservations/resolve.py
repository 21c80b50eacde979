"""Use cases: settle, cancel and expire a reservation. Each is one transaction (`ReservationRepository.
resolve`) of the `held -> settled|cancelled|expired` transition and the counter changes, so of a settle,
a cancel, a retry and the sweep racing for one reservation exactly one gives back, once.

Settle keeps `min(actual, estimate)`, gives back the rest, and when `actual > estimate` takes the extra
through the same take as a reserve (`entitlements.take`: the quota, then live grants): a hard quota takes
only what it and the grants have left and
the answer's `uncovered` says what it could not; a soft one takes all of it and reports overage. A repeat of
the same request answers the stored outcome and changes nothing; any other request for a resolved
reservation is refused with 409. A settle or cancel at or after the reservation's expiry first expires it
(the give-back happens there and then) and is refused with 409, taking nothing.

A give-back refills the grants that paid first (the last drawn first: what is kept counts on the quota,
which pays first), then the counters. A grant expired or voided since it paid is not refilled: its part is
`forfeited` (recorded on the reservation). Refills ride in the same transaction as the transition.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from billing_platform.entities.repository import limit_key
from billing_platform.entitlements.entity_take import LevelRequest, LevelTaken, take_at_levels
from billing_platform.entitlements.models import ConsumeRequest, CounterState, DenyReason, QuotaCounter
from billing_platform.entitlements.take import GrantsPaid, Shares, Taken, companion_items, take
from billing_platform.entitlements.views import live_counters
from billing_platform.errors import ConflictError, MeterUnavailable, NotFoundError, RateLimitedError, UnprocessableError
from billing_platform.quantities import ZERO
from billing_platform.reservations.context import ReservationContext
from billing_platform.reservations.models import (
    Reservation,
    ReservationState,
    merge_grants,
    split_give_back,
    split_refill,
)
from billing_platform.reservations.repository import CounterChange, GrantRefill, Resolution

if TYPE_CHECKING:
    from billing_platform.entitlements.capped import SpendLeg

logger = logging.getLogger(__name__)

MAX_ROUNDS = 24


def settle(ctx: ReservationContext, tenant_id: str, reservation_id: str, actual: Decimal) -> tuple[Reservation, bool]:
    """Charge `actual` for the reservation. Returns (reservation, replayed)."""
    reservation = _load(ctx, tenant_id, reservation_id)
    if actual != 0:
        ctx.entitlements.validate(reservation.resource_type, actual)
    elif not actual.is_finite():
        raise UnprocessableError("quantity must be finite", code="invalid_quantity")
    outcome, replayed = _resolve(ctx, reservation, ReservationState.SETTLED, actual)
    if outcome.meter_pending:
        send_usage(ctx, outcome)
    return outcome, replayed


def cancel(ctx: ReservationContext, tenant_id: str, reservation_id: str) -> tuple[Reservation, bool]:
    """Give the whole estimate back. Returns (reservation, replayed)."""
    return _resolve(ctx, _load(ctx, tenant_id, reservation_id), ReservationState.CANCELLED, None)


def expire(ctx: ReservationContext, reservation: Reservation) -> tuple[Reservation, bool]:
    """Give back a reservation that is past its expiry (the sweep). Whatever resolved it first wins:
    (reservation as it now stands, True) when this call was not the one."""
    return _resolve(ctx, reservation, ReservationState.EXPIRED, None)


def send_usage(ctx: ReservationContext, reservation: Reservation) -> bool:
    """Send a settled reservation's usage record, then leave the sweep's index. On failure it stays there
    and the sweep sends the same record later; the settle itself has already been committed."""
    try:
        ctx.meter.send(reservation)
    except (MeterUnavailable, OSError) as exc:
        logger.warning(
            "settle usage not sent yet", extra={"reservation_id": reservation.reservation_id, "error": str(exc)}
        )
        return False
    ctx.repo.mark_metered(reservation)
    return True


def _load(ctx: ReservationContext, tenant_id: str, reservation_id: str) -> Reservation:
    reservation = ctx.repo.get(tenant_id, reservation_id)
    if reservation is None:
        # Also the answer for another tenant's id: the key holds the tenant, so it is simply not there.
        raise NotFoundError(f"no reservation {reservation_id!r}", code="unknown_reservation")
    return reservation


def _resolve(
    ctx: ReservationContext, reservation: Reservation, target: ReservationState, actual: Decimal | None
) -> tuple[Reservation, bool]:
    current = reservation
    dropped: set[int] = set()  # shards whose counter left the reservation's period: nothing to give back there
    capped: dict[int, Decimal] = {}
    forfeit: set[str] = set()  # grants that paid but can no longer be refilled
    dropped_entities: set[str] = set()
    leg: SpendLeg | None = None  # a capped tenant's spend, read when there is something to give back
    for _round in range(MAX_ROUNDS):
        if not current.held:
            return _answer_resolved(current, target, actual), True
        now = ctx.clock()
        if target is not ReservationState.EXPIRED and current.due_at <= now:
            expired, _replayed = expire(ctx, current)
            raise ConflictError(
                f"reservation {current.reservation_id} expired at {current.due_at.isoformat()} and was given back",
                code="reservation_expired",
                details={"state": expired.state.value, "expires_at": current.due_at.isoformat()},
            )
        keep = min(actual, current.estimate) if actual is not None else ZERO
        extra = actual - current.estimate if actual is not None and actual > current.estimate else ZERO
        if extra > 0:
            resolved = _settle_extra(ctx, current, actual or ZERO, extra)
            if resolved is not None:
                return resolved, False
            current = _reload(ctx, current)
            continue
        back = current.estimate - keep
        refills = split_refill(current.grants, back)
        counter_back = back - sum((q for _g, q in refills), ZERO)
        gives = [
            (shard, min(part, capped.get(shard, part)))
            for shard, part in split_give_back(current.shards, counter_back)
            if shard not in dropped
        ]
        gives = [(shard, part) for shard, part in gives if part > 0]
        live = [(g, q) for g, q in refills if g not in forfeit]
        given = sum((q for _s, q in gives), ZERO) + sum((q for _g, q in live), ZERO)
        lost = sum((q for g, q in refills if g in forfeit), ZERO)
        after = current.resolved(target, now, actual=actual, charged=keep, given_back=given, forfeited=lost)
        changes = [CounterChange(ctx.repo.counter_key_of(current, shard), part) for shard, part in gives]
        # The entities counted the whole estimate (their takes never draw grants): each gets `back` again.
        entity_backs = [e for e in current.entities if e not in dropped_entities] if back > 0 else []
        changes += [CounterChange(limit_key(current.tenant_id, e, current.resource_type), back) for e in entity_backs]
        grant_refills = [GrantRefill(ctx.repo.grant_key_of(current, g), q) for g, q in live]
        counted_back = sum((q for _s, q in gives), ZERO)
        if counted_back > 0 and leg is None:
            leg = ctx.entitlements.spend_caps.leg(
                current.tenant_id,
                current.resource_type,
                at=current.reserved_at,
                fresh=True,
                entity_id=current.entity_id,
            )
        spend = leg.item(-counted_back) if leg is not None else None
        result = ctx.repo.resolve(current, after, changes, now, refills=grant_refills, spend=spend)
        if result.applied:
            if leg is not None and spend is not None:
                leg.committed()
            _log(after)
            return after, False
        if result.spend_refused and leg is not None:
            leg.reprice(result.spend, ZERO)  # priced again at the spend item's real usage
            continue
        if result.refill_index is not None:
            # Expired or voided since it paid: its units are forfeited, not revived (and never moved to
            # the quota, which did not pay them).
            grant_id = live[result.refill_index][0]
            logger.info(
                "grant no longer live; its part of the give-back is forfeited",
                extra={"reservation_id": current.reservation_id, "grant_id": grant_id},
            )
            forfeit.add(grant_id)
            continue
        if result.counter_index is not None and result.counter_index >= len(gives):
            # An entity's limit moved past the reservation's period (or was removed): nothing to give there.
            dropped_entities.add(entity_backs[result.counter_index - len(gives)])
            continue
        current = _after_refusal(ctx, current, result, gives, dropped, capped)
    raise RateLimitedError("the reservation is under heavy contention; retry shortly")


def _after_refusal(
    ctx: ReservationContext,
    current: Reservation,
    result: Resolution,
    gives: list[tuple[int, Decimal]],
    dropped: set[int],
    capped: dict[int, Decimal],
) -> Reservation:
    if result.reservation is not None:
        return result.reservation  # resolved by someone else: answered from the top of the loop
    if result.counter_index is not None:
        shard, part = gives[result.counter_index]
        counter = result.counter
        if counter is not None and counter.state is CounterState.RETIRED:
            # A plan change moved the quota to another layout, carrying its usage (this hold included):
            # give back into the layout in force, on counters still in the reservation's period.
            dropped.clear()
            capped.clear()
            return _retarget(ctx, current)
        if counter is None or not _same_period(counter, current):
            # Rolled over: the hold went with its period, which is closed; the new one owes it nothing.
            logger.info(
                "reservation period closed; nothing given back on this counter",
                extra={"reservation_id": current.reservation_id, "shard": shard},
            )
            dropped.add(shard)
        else:
            capped[shard] = max(ZERO, min(part, counter.used))  # never below zero used
            if capped[shard] == 0:
                dropped.add(shard)
        return current
    time.sleep(0.002)  # a racing transaction held one of the items
    return current


def _retarget(ctx: ReservationContext, current: Reservation) -> Reservation:
    """The reservation as if taken from the layout now in force: its estimate spread over that layout's
    counters of the same period by their usage (in memory only; the stored item keeps where it was taken)."""
    counters = live_counters(ctx.entitlements.context, current.tenant_id, current.resource_type, current.layout) or []
    shares: list[tuple[int, Decimal]] = []
    left = current.estimate
    for counter in sorted(counters, key=lambda c: -c.used):
        if left <= 0:
            break
        if counter.state is CounterState.RETIRED or not _same_period(counter, current):
            continue
        part = min(left, counter.used)
        if part > 0:
            shares.append((counter.shard, part))
            left -= part
    layout = counters[0].shards if counters else current.layout
    return replace(current, shards=tuple(shares), layout=layout)


def _same_period(counter: QuotaCounter, reservation: Reservation) -> bool:
    return (
        counter.state is not CounterState.RETIRED
        and counter.period_start <= reservation.reserved_at < counter.period_end
    )


def _settle_extra(ctx: ReservationContext, current: Reservation, actual: Decimal, extra: Decimal) -> Reservation | None:
    """Keep the estimate and take `extra` more through the shared take, with the transition as its
    companion. A hard quota short of it is asked again for what it has left; what no one can cover is
    reported `uncovered`. None: the reservation was resolved meanwhile (the caller re-reads it)."""
    wanted = extra
    built: list[Reservation] = []
    # A capped tenant's extra is counted on the spend of the period it is taken in (and on the entity's line,
    # held to its cap), in the same transaction.
    leg = ctx.entitlements.spend_caps.leg(current.tenant_id, current.resource_type, entity_id=current.entity_id)
    for _round in range(MAX_ROUNDS):

        def companion(
            now: datetime, shares: Shares, layout: int, grants: GrantsPaid, amount: Decimal = wanted
        ) -> dict[str, Any] | list[dict[str, Any]]:
            after = replace(
                current.resolved(
                    ReservationState.SETTLED,
                    now,
                    actual=actual,
                    charged=current.estimate + amount,
                    uncovered=extra - amount,
                ),
                grants=merge_grants(current.grants, grants),
            )
            built[:] = [after]
            transition = ctx.repo.transition_item(current, after, now)
            if leg is None:
                return transition
            spend = leg.item(sum((part for _shard, part in shares), ZERO))
            return [transition] if spend is None else [transition, spend]

        taken: Taken | LevelTaken
        if current.entity_id is not None:

            def companions(
                now: datetime,
                shares: Shares,
                layout: int,
                _entities: tuple[str, ...],
                grants: GrantsPaid,
                amount: Decimal = wanted,
            ) -> list[dict[str, Any]]:
                return companion_items(companion(now, shares, layout, grants, amount))

            request = LevelRequest(current.tenant_id, current.resource_type, wanted, current.entity_id)
            taken = take_at_levels(ctx.entitlements.context, request, companions)
        else:
            plain = ConsumeRequest(current.tenant_id, current.resource_type, wanted)
            taken = take(ctx.entitlements.context, plain, companion)
        if taken.granted:
            if leg is not None:
                leg.committed()
            _log(built[-1])
            return built[-1]
        spend_index = taken.companion_index == 1 if isinstance(taken, Taken) else taken.existing_index == -1
        if leg is not None and leg.sent and taken.denial is None and not taken.granted and spend_index:
            # The spend item was not where the extra was priced; past a hard cap only what it still allows.
            if leg.reprice(taken.existing, wanted) is not None:
                wanted = leg.affordable(wanted)
                if wanted <= 0:
                    return _settle_uncovered(ctx, current, actual, extra)
            continue
        if taken.existing is not None:
            return None
        denial = taken.denial
        left = ZERO
        if denial is not None and denial.refused_by is not None:
            # What the refusing level's period still holds (a window refusal: nothing more this window).
            rows = [s for s in denial.levels if s.level == denial.refused_by and s.window is None]
            left = rows[0].remaining or ZERO if rows and denial.reason is not DenyReason.WINDOW else ZERO
        elif denial is not None:
            # What the quota and the live grants still hold together (a reserve's take draws both).
            left = (denial.remaining or ZERO) + (denial.grant_remaining or ZERO)
        if left <= 0 or left >= wanted:
            return _settle_uncovered(ctx, current, actual, extra)
        wanted = left
    raise RateLimitedError("the quota is under heavy contention; retry shortly")


def _settle_uncovered(
    ctx: ReservationContext, current: Reservation, actual: Decimal, extra: Decimal
) -> Reservation | None:
    now = ctx.clock()
    after = current.resolved(ReservationState.SETTLED, now, actual=actual, charged=current.estimate, uncovered=extra)
    result = ctx.repo.resolve(current, after, [], now)
    if result.applied:
        _log(after)
        return after
    return None


def _reload(ctx: ReservationContext, current: Reservation) -> Reservation:
    fresh = ctx.repo.get(current.tenant_id, current.reservation_id)
    if fresh is None:
        raise NotFoundError(f"no reservation {current.reservation_id!r}", code="unknown_reservation")
    return fresh


def _answer_resolved(current: Reservation, target: ReservationState, actual: Decimal | None) -> Reservation:
    """A repeat of the request that resolved it replays; anything else is a conflict."""
    if current.state is target and (target is not ReservationState.SETTLED or current.actual == actual):
        return current
    if target is ReservationState.EXPIRED:
        return current  # the sweep lost the race: nothing to do
    if current.state is ReservationState.SETTLED and target is ReservationState.SETTLED:
        message = f"reservation {current.reservation_id} was settled with {current.actual}, not {actual}"
    else:
        message = f"reservation {current.reservation_id} is already {current.state.value}"
    raise ConflictError(
        message,
        code=f"reservation_{current.state.value}",
        details={"state": current.state.value, "reservation": current.to_dict()},
    )


def _log(after: Reservation) -> None:
    logger.info(
        "reservation resolved",
        extra={
            "tenant_id": after.tenant_id,
            "reservation_id": after.reservation_id,
            "state": after.state.value,
            "charged": str(after.charged),
            "given_back": str(after.given_back),
            "uncovered": str(after.uncovered),
        },
    )
