"""Reservations on Amazon's DynamoDB Local: reserve takes like a consume, settle (below, at, above the
estimate), cancel and expiry give back exactly once, into the period the estimate came from, and a settle
meters its charged amount once under a record id derived from the reservation."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing_platform.errors import ConflictError, NotFoundError, QuotaExceededError, UnprocessableError
from billing_platform.reservations import ReservationState
from billing_platform.reservations.models import usage_record_id
from tests.factories.reservations import Harness, used

pytestmark = [pytest.mark.ddblocal, pytest.mark.xdist_group("ddblocal")]

TTL = timedelta(seconds=60)


@pytest.fixture
def harness(ddb_local_tables: dict[str, str], dynamodb_local: Any) -> Harness:
    built = Harness(ddb_local_tables, dynamodb_local.endpoint_url)
    built.apply("acme", "hard")
    return built


def test_reserve_takes_the_estimate_and_settle_below_gives_the_rest_back(harness: Harness) -> None:
    service = harness.service()
    held, replayed = service.reserve("acme", "tokens", Decimal(4000), ttl=TTL)
    assert (held.state, replayed) == (ReservationState.HELD, False)
    assert used(harness, "acme") == 4000

    settled, replayed = service.settle("acme", held.reservation_id, Decimal(1234))
    assert (settled.state, settled.charged, settled.given_back, replayed) == ("settled", 1234, 2766, False)
    assert used(harness, "acme") == 1234
    assert harness.metered("acme") == {usage_record_id(held.reservation_id): Decimal(1234)}


def test_settle_retry_answers_the_same_and_changes_nothing(harness: Harness) -> None:
    service = harness.service()
    held, _ = service.reserve("acme", "tokens", Decimal(100), ttl=TTL)
    first, _ = service.settle("acme", held.reservation_id, Decimal(100))
    again, replayed = service.settle("acme", held.reservation_id, Decimal(100))
    assert replayed is True
    assert again.to_dict() == first.to_dict()
    assert used(harness, "acme") == 100
    assert harness.metered("acme") == {usage_record_id(held.reservation_id): Decimal(100)}
    with pytest.raises(ConflictError) as other:
        service.settle("acme", held.reservation_id, Decimal(90))
    assert other.value.code == "reservation_settled"
    with pytest.raises(ConflictError):
        service.cancel("acme", held.reservation_id)
    assert used(harness, "acme") == 100


def test_settle_above_estimate_takes_the_extra_when_a_hard_quota_has_it(harness: Harness) -> None:
    service = harness.service()
    assert service.entitlements.consume("acme", "tokens", Decimal(4500)).allowed
    held, _ = service.reserve("acme", "tokens", Decimal(300), ttl=TTL)  # 200 left after this
    settled, _ = service.settle("acme", held.reservation_id, Decimal(450))
    assert (settled.charged, settled.uncovered, settled.given_back) == (Decimal(450), Decimal(0), Decimal(0))
    assert used(harness, "acme") == 4950
    assert harness.metered("acme") == {usage_record_id(held.reservation_id): Decimal(450)}


def test_settle_above_estimate_reports_what_a_hard_quota_could_not_cover(harness: Harness) -> None:
    service = harness.service()
    assert service.entitlements.consume("acme", "tokens", Decimal(4600)).allowed
    held, _ = service.reserve("acme", "tokens", Decimal(300), ttl=TTL)  # 100 left after this
    settled, _ = service.settle("acme", held.reservation_id, Decimal(550))
    assert (settled.charged, settled.uncovered) == (Decimal(400), Decimal(150))
    assert used(harness, "acme") == 5000
    assert harness.metered("acme") == {usage_record_id(held.reservation_id): Decimal(400)}


def test_settle_above_estimate_on_a_soft_quota_takes_it_all_as_overage(harness: Harness) -> None:
    harness.apply("soft-co", "soft")
    service = harness.service()
    held, _ = service.reserve("soft-co", "tokens", Decimal(900), ttl=TTL)
    settled, _ = service.settle("soft-co", held.reservation_id, Decimal(1500))
    assert (settled.charged, settled.uncovered) == (Decimal(1500), Decimal(0))
    check = service.entitlements.check("soft-co", "tokens")
    assert (check.used, check.overage) == (Decimal(1500), Decimal(500))


def test_reserve_beyond_a_hard_quota_is_refused_and_holds_nothing(harness: Harness) -> None:
    service = harness.service()
    with pytest.raises(QuotaExceededError) as refused:
        service.reserve("acme", "tokens", Decimal(5001), ttl=TTL)
    assert refused.value.http_status == 402
    assert refused.value.details["remaining"] == "5000"
    assert used(harness, "acme") == 0
    with pytest.raises(UnprocessableError):
        service.reserve("acme", "tokens", Decimal("-1"), ttl=TTL)
    with pytest.raises(UnprocessableError):
        service.reserve("acme", "tokens", Decimal(1), ttl=timedelta(days=2))


def test_reserve_with_an_idempotency_key_holds_once(harness: Harness) -> None:
    service = harness.service()
    first, replayed_first = service.reserve("acme", "tokens", Decimal(700), ttl=TTL, idempotency_key="job-1")
    second, replayed_second = service.reserve("acme", "tokens", Decimal(700), ttl=TTL, idempotency_key="job-1")
    assert (first.reservation_id, replayed_first, replayed_second) == (second.reservation_id, False, True)
    assert used(harness, "acme") == 700
    with pytest.raises(UnprocessableError):
        service.reserve("acme", "tokens", Decimal(701), ttl=TTL, idempotency_key="job-1")


def test_cancel_gives_everything_back_once(harness: Harness) -> None:
    service = harness.service()
    held, _ = service.reserve("acme", "tokens", Decimal(800), ttl=TTL)
    cancelled, replayed = service.cancel("acme", held.reservation_id)
    assert (cancelled.state, cancelled.given_back, replayed) == ("cancelled", Decimal(800), False)
    again, replayed = service.cancel("acme", held.reservation_id)
    assert (again.state, replayed) == ("cancelled", True)
    assert used(harness, "acme") == 0
    with pytest.raises(ConflictError):
        service.settle("acme", held.reservation_id, Decimal(1))
    assert harness.metered("acme") == {}


def test_expired_reservation_is_given_back_by_the_sweep_once_and_settle_is_refused(harness: Harness) -> None:
    service = harness.service()
    held, _ = service.reserve("acme", "tokens", Decimal(600), ttl=TTL)
    assert service.sweep().expired == 0  # not due yet
    harness.clock.advance(TTL + timedelta(seconds=1))
    report = service.sweep()
    assert report.expired == 1
    assert used(harness, "acme") == 0
    assert service.sweep().expired == 0
    with pytest.raises(ConflictError) as refused:
        service.settle("acme", held.reservation_id, Decimal(600))
    assert refused.value.http_status == 409
    assert refused.value.code == "reservation_expired"
    assert used(harness, "acme") == 0
    assert service.get("acme", held.reservation_id).state is ReservationState.EXPIRED


def test_settle_after_expiry_before_the_sweep_gives_back_and_is_refused(harness: Harness) -> None:
    service = harness.service()
    held, _ = service.reserve("acme", "tokens", Decimal(600), ttl=TTL)
    harness.clock.advance(TTL)
    with pytest.raises(ConflictError) as refused:
        service.settle("acme", held.reservation_id, Decimal(100))
    assert refused.value.code == "reservation_expired"
    assert used(harness, "acme") == 0
    assert service.sweep().expired == 0
    assert harness.metered("acme") == {}


def test_a_reservation_of_a_rolled_over_period_gives_nothing_to_the_new_one(harness: Harness) -> None:
    harness.apply("roll", "hard", left=timedelta(minutes=30))
    service = harness.service()
    held, _ = service.reserve("roll", "tokens", Decimal(1000), ttl=timedelta(hours=2))
    harness.clock.advance(timedelta(minutes=31))
    fresh = service.entitlements.consume("roll", "tokens", Decimal(10))  # rolls the counter over
    assert (fresh.allowed, fresh.used) == (True, Decimal(10))
    cancelled, _ = service.cancel("roll", held.reservation_id)
    assert (cancelled.state, cancelled.given_back) == ("cancelled", Decimal(0))
    assert used(harness, "roll") == 10


def test_sharded_quota_reserves_and_gives_back_on_its_own_shards(harness: Harness) -> None:
    harness.apply("hot", "sharded")
    service = harness.service(seed=3)
    holds = [service.reserve("hot", "tokens", Decimal(900), ttl=TTL)[0] for _ in range(4)]
    assert used(harness, "hot") == 3600
    big, _ = service.reserve("hot", "tokens", Decimal(400), ttl=TTL)  # spread: no shard has 400 left alone
    assert used(harness, "hot") == 4000
    with pytest.raises(QuotaExceededError):
        service.reserve("hot", "tokens", Decimal(1), ttl=TTL)
    for hold in [*holds, big]:
        service.settle("hot", hold.reservation_id, Decimal(100))
    assert used(harness, "hot") == 500


def test_another_tenants_reservation_is_not_found(harness: Harness) -> None:
    harness.apply("other", "hard")
    service = harness.service()
    held, _ = service.reserve("acme", "tokens", Decimal(10), ttl=TTL)
    with pytest.raises(NotFoundError):
        service.get("other", held.reservation_id)
    with pytest.raises(NotFoundError):
        service.settle("other", held.reservation_id, Decimal(1))
    assert used(harness, "acme") == 10


def test_a_hold_carried_into_a_new_counter_layout_is_given_back_there(harness: Harness) -> None:
    harness.apply("grow", "hard")
    service = harness.service()
    assert service.entitlements.consume("grow", "tokens", Decimal(500)).allowed
    held, _ = service.reserve("grow", "tokens", Decimal(1000), ttl=TTL)
    harness.apply("grow", "sharded")  # same period, 4 shards: the old counter is frozen, its usage carried
    assert used(harness, "grow") == 1500
    cancelled, _ = service.cancel("grow", held.reservation_id)
    assert (cancelled.state, cancelled.given_back) == ("cancelled", Decimal(1000))
    assert used(harness, "grow") == 500
