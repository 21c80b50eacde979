"""Pure reservation rules: ids, the usage record id, how a give-back is spread over the shards taken."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from billing_platform.reservations.models import (
    RESERVATION_ID_PATTERN,
    Reservation,
    ReservationState,
    new_reservation_id,
    reservation_id_for,
    split_give_back,
    usage_record_id,
)
from billing_platform.usage.models import ID_PATTERN

NOW = datetime(2026, 11, 27, 9, 0, 0, 123456, tzinfo=UTC)


def test_ids_match_their_patterns_and_an_idempotency_key_names_one_reservation_per_tenant() -> None:
    assert re.match(RESERVATION_ID_PATTERN, new_reservation_id())
    assert reservation_id_for("acme", "job-1") == reservation_id_for("acme", "job-1")
    assert reservation_id_for("acme", "job-1") != reservation_id_for("globex", "job-1")
    assert re.match(RESERVATION_ID_PATTERN, reservation_id_for("acme", "job-1"))


def test_the_usage_record_id_is_derived_from_the_reservation_and_accepted_by_the_usage_pipeline() -> None:
    rid = new_reservation_id()
    assert usage_record_id(rid) == usage_record_id(rid) == f"{rid}.settle"
    assert re.match(ID_PATTERN, usage_record_id(rid))


def test_a_give_back_never_exceeds_what_a_shard_gave_and_sums_to_the_amount() -> None:
    shares = ((0, Decimal(30)), (3, Decimal(50)), (5, Decimal(20)))
    assert split_give_back(shares, Decimal(100)) == [(3, Decimal(50)), (0, Decimal(30)), (5, Decimal(20))]
    assert split_give_back(shares, Decimal(60)) == [(3, Decimal(50)), (0, Decimal(10))]
    assert split_give_back(shares, Decimal(0)) == []


def test_resolving_stores_whole_seconds_and_marks_usage_pending_only_for_a_charged_settle() -> None:
    held = Reservation(
        "acme", new_reservation_id(), "tokens", Decimal(10), NOW, NOW + timedelta(minutes=5), ((0, Decimal(10)),), 1
    )
    settled = held.resolved(ReservationState.SETTLED, NOW, actual=Decimal(4), charged=Decimal(4), given_back=Decimal(6))
    assert settled.resolved_at == NOW.replace(microsecond=0)
    assert settled.meter_pending
    assert not held.resolved(ReservationState.SETTLED, NOW, actual=Decimal(0)).meter_pending
    assert not held.resolved(ReservationState.CANCELLED, NOW, given_back=Decimal(10)).meter_pending
    assert held.due(NOW + timedelta(minutes=5))
    assert not held.due(NOW + timedelta(minutes=4))
    assert not settled.due(NOW + timedelta(days=1))
