"""Reservation models: a hold on quota for work whose cost is known only afterwards (LLM tokens).

No I/O here. A reservation is taken `held` with its estimate already consumed from the quota, and leaves
that state exactly once: `settled` (the actual amount charged, the rest given back or the extra taken),
`cancelled` (everything given back) or `expired` (everything given back by the sweep once `due_at` has
passed). Every later request for it answers from the stored outcome and changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TypeVar

from billing_platform.quantities import ZERO, decimal_str

Holder = TypeVar("Holder")  # what a share belongs to: a shard number or a grant id

RESERVATION_PREFIX = "rsv_"
RESERVATION_ID_PATTERN = r"^rsv_[0-9a-f]{32}$"
MIN_TTL = timedelta(seconds=1)
MAX_TTL = timedelta(hours=24)
DEFAULT_TTL = timedelta(minutes=5)
# Resolved reservations stay readable (a retried settle replays its answer) this long, then TTL removes them.
RESOLVED_RETENTION = timedelta(days=40)
# A settle sends its usage record right after its transaction; if it crashed in between, the sweep sends
# it once this much time has passed (the record id is fixed, so a late duplicate is dropped downstream).
METER_RETRY_AFTER = timedelta(seconds=60)


class ReservationState(StrEnum):
    HELD = "held"
    SETTLED = "settled"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


def new_reservation_id() -> str:
    """A fresh reservation id: `rsv_` + 32 hex digits."""
    return f"{RESERVATION_PREFIX}{uuid.uuid4().hex}"


def reservation_id_for(tenant_id: str, idempotency_key: str) -> str:
    """The reservation id a client's idempotency key names: a retried reserve finds the same one."""
    digest = hashlib.sha256(f"{tenant_id}\x00{idempotency_key}".encode()).hexdigest()[:32]
    return f"{RESERVATION_PREFIX}{digest}"


def usage_record_id(reservation_id: str) -> str:
    """The usage record a settle emits: derived from the reservation alone, so no retry, sweep re-send or
    redelivery can meter a reservation twice (the usage table keys raw records by tenant and record id)."""
    return f"{reservation_id}.settle"


@dataclass(frozen=True)
class Reservation:
    """One reservation item. `shards` lists what the counters paid ((shard, quantity) of layout `layout`),
    `grants` what each grant paid past an exhausted hard quota ((grant id, quantity), draw order; a settle
    above the estimate appends its own); `reserved_at` pins the quota period a give-back may go into.
    `forfeited`: grant units not refilled on resolution because the grant had expired or been voided."""

    tenant_id: str
    reservation_id: str
    resource_type: str
    estimate: Decimal
    reserved_at: datetime
    due_at: datetime
    shards: tuple[tuple[int, Decimal], ...]
    layout: int
    grants: tuple[tuple[str, Decimal], ...] = ()
    state: ReservationState = ReservationState.HELD
    actual: Decimal | None = None  # what the settle reported
    charged: Decimal = ZERO  # what the quota finally counts (estimate portion kept + extra covered)
    given_back: Decimal = ZERO
    uncovered: Decimal = ZERO  # extra a hard quota could not cover
    resolved_at: datetime | None = None
    meter_pending: bool = False
    forfeited: Decimal = ZERO
    # Reserved naming an entity: the entities whose limits the estimate was also counted at (a give-back
    # returns there too, within the reservation's period).
    entity_id: str | None = None
    entities: tuple[str, ...] = ()

    @property
    def held(self) -> bool:
        return self.state is ReservationState.HELD

    def due(self, now: datetime) -> bool:
        return self.held and self.due_at <= now

    def resolved(
        self,
        state: ReservationState,
        now: datetime,
        *,
        actual: Decimal | None = None,
        charged: Decimal = ZERO,
        given_back: Decimal = ZERO,
        uncovered: Decimal = ZERO,
        forfeited: Decimal = ZERO,
    ) -> Reservation:
        return replace(
            self,
            forfeited=forfeited,
            state=state,
            actual=actual,
            charged=charged,
            given_back=given_back,
            uncovered=uncovered,
            resolved_at=now.replace(microsecond=0),  # as stored: a replay answers the same
            meter_pending=state is ReservationState.SETTLED and charged > 0,
        )

    def to_dict(self) -> dict[str, object]:
        """JSON-safe view (quantities as decimal strings, times ISO 8601 UTC)."""
        return {
            "reservation_id": self.reservation_id,
            "tenant_id": self.tenant_id,
            "resource_type": self.resource_type,
            "state": self.state.value,
            "estimate": decimal_str(self.estimate),
            "actual": decimal_str(self.actual),
            "charged": decimal_str(self.charged),
            "given_back": decimal_str(self.given_back),
            "uncovered": decimal_str(self.uncovered),
            "reserved_at": self.reserved_at.isoformat(),
            "expires_at": self.due_at.isoformat(),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "from_grants": [{"grant_id": g, "quantity": decimal_str(q)} for g, q in self.grants],
            "forfeited": decimal_str(self.forfeited),
            "entity_id": self.entity_id,
        }


def shards_json(shards: tuple[tuple[int, Decimal], ...]) -> str:
    return json.dumps([[s, decimal_str(q)] for s, q in shards])


def shards_from_json(text: str) -> tuple[tuple[int, Decimal], ...]:
    return tuple((int(s), Decimal(str(q))) for s, q in json.loads(text))


def split_give_back(shards: tuple[tuple[int, Decimal], ...], amount: Decimal) -> list[tuple[int, Decimal]]:
    """Spread a give-back over the shards the estimate came from (largest take first), never giving a
    shard more than was taken from it; the parts sum to `amount` (at most the estimate)."""
    return _fill_in_order(sorted(shards, key=lambda p: (-p[1], p[0])), amount)


def grants_json(grants: tuple[tuple[str, Decimal], ...]) -> str:
    return json.dumps([[g, decimal_str(q)] for g, q in grants])


def grants_from_json(text: str) -> tuple[tuple[str, Decimal], ...]:
    return tuple((str(g), Decimal(str(q))) for g, q in json.loads(text))


def merge_grants(
    first: tuple[tuple[str, Decimal], ...], more: tuple[tuple[str, Decimal], ...]
) -> tuple[tuple[str, Decimal], ...]:
    """What grants paid over two takes, one entry per grant, in first-draw order."""
    totals: dict[str, Decimal] = {}
    for grant_id, quantity in (*first, *more):
        totals[grant_id] = totals.get(grant_id, ZERO) + quantity
    return tuple(totals.items())


def split_refill(grants: tuple[tuple[str, Decimal], ...], amount: Decimal) -> list[tuple[str, Decimal]]:
    """The part of a give-back that refills grants: the grants are given back FIRST (the quota pays first,
    so what is kept is counted on the quota), the last drawn first, never more than each paid."""
    return _fill_in_order(reversed(grants), amount)


def _fill_in_order(holders: Iterable[tuple[Holder, Decimal]], amount: Decimal) -> list[tuple[Holder, Decimal]]:
    """`amount` spread over `holders` in the order given, each getting at most its own share; a holder
    that is not reached gets no entry."""
    out: list[tuple[Holder, Decimal]] = []
    left = amount
    for holder, share in holders:
        if left <= 0:
            break
        part = min(left, share)
        out.append((holder, part))
        left -= part
    return out
