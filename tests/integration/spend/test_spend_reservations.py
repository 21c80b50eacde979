"""Reservations and releases of a capped tenant on DynamoDB Local (plan `metered`: tokens free up to 100,
then graduated on the billable units: 3 / unit to 200, 2 / unit plus a flat 50 to 500, 1 / unit above, so
usage 300 costs 600 and crossing it adds the flat 50; gpu 5 / unit). A hold
puts the estimate's cost on the spend in the same transaction as the hold; a settle moves the spend to
the actual's cost (below: the difference given back, above: the extra taken, and past a hard cap only
what it still allows); a cancel or a release gives back exactly the rated cost, across tier boundaries.
After every step the spend item's usage is the counter's and its amount the rating of that usage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing_platform.entitlements.service import EntitlementService
from billing_platform.errors import ConflictError, SpendCapReachedError
from billing_platform.rating import rate
from billing_platform.reservations import ReservationState
from billing_platform.spend.models import SpendCapRequest
from tests.factories.spend import SpendHarness

pytestmark = [pytest.mark.ddblocal, pytest.mark.xdist_group("ddblocal")]

TTL = timedelta(seconds=60)


class Later:
    """The clock of a container that runs `offset` ahead of real time (to reach a hold's expiry)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def harness(ddb_local_tables: dict[str, str], dynamodb_local: Any) -> SpendHarness:
    return SpendHarness(ddb_local_tables, dynamodb_local.endpoint_url)


def capped(harness: SpendHarness, amount: int, **extra: Any) -> EntitlementService:
    harness.start("acme", SpendCapRequest(currency="usd", amount=amount, **extra))
    return harness.service()


def spend_of(service: EntitlementService, resource: str = "tokens") -> tuple[Decimal, Decimal, Decimal]:
    """(usage on the spend item, its amount, the period's total), after checking the usage is the counter's
    and the amount its rating."""
    _end, state = service.spend_caps.state("acme")
    used = service.check("acme", resource, Decimal(1)).used
    price = service.catalog.plan("metered").pricing.resources[resource].price  # type: ignore[union-attr]
    assert state.used_of(resource) == used
    assert state.spent_of(resource) == rate(price, used).raw
    return state.used_of(resource), state.spent_of(resource), state.total


def test_a_hold_puts_the_estimates_cost_on_the_spend_and_a_settle_below_gives_the_rest_back(
    harness: SpendHarness,
) -> None:
    service = capped(harness, 1000)
    reservations = harness.reservations(service)
    held, _ = reservations.reserve("acme", "tokens", Decimal(150), ttl=TTL)
    assert spend_of(service) == (150, 150, 150)  # 50 past the free 100 at 3
    settled, _ = reservations.settle("acme", held.reservation_id, Decimal(120))
    assert (settled.charged, settled.given_back) == (120, 30)
    assert spend_of(service) == (120, 60, 60)
    assert harness.metered[held.reservation_id] == 120


def test_a_settle_above_takes_the_extras_cost_across_a_tier_boundary(harness: SpendHarness) -> None:
    service = capped(harness, 1000)
    reservations = harness.reservations(service)
    held, _ = reservations.reserve("acme", "tokens", Decimal(150), ttl=TTL)
    settled, _ = reservations.settle("acme", held.reservation_id, Decimal(450))
    assert (settled.charged, settled.uncovered) == (450, 0)
    assert spend_of(service) == (450, 950, 950)  # 200 x 3 + 50 + 150 x 2


def test_a_settle_above_takes_only_what_a_hard_cap_still_allows(harness: SpendHarness) -> None:
    service = capped(harness, 800)
    reservations = harness.reservations(service)
    held, _ = reservations.reserve("acme", "tokens", Decimal(150), ttl=TTL)
    settled, _ = reservations.settle("acme", held.reservation_id, Decimal(450))
    # 150 -> 300 costs 450, crossing 300 the flat 50, then 75 units at 2: 650 more, the cap exactly.
    assert (settled.charged, settled.uncovered) == (375, 75)
    assert spend_of(service) == (375, 800, 800)
    assert harness.metered[held.reservation_id] == 375


def test_a_hold_that_would_pass_a_hard_cap_is_refused_and_nothing_is_held(harness: SpendHarness) -> None:
    service = capped(harness, 100)
    reservations = harness.reservations(service)
    with pytest.raises(SpendCapReachedError) as refused:
        reservations.reserve("acme", "tokens", Decimal(200), ttl=TTL, idempotency_key="r-1")
    detail = refused.value.refused
    assert (detail.scope, detail.cap, detail.spend, detail.cost) == ("period", 100, 0, 300)
    assert service.check("acme", "tokens", Decimal(1)).used == 0
    assert reservations.open("acme") == []
    held, replayed = reservations.reserve("acme", "tokens", Decimal(130), ttl=TTL, idempotency_key="r-2")
    again, replayed_again = reservations.reserve("acme", "tokens", Decimal(130), ttl=TTL, idempotency_key="r-2")
    assert (replayed, replayed_again, again.reservation_id) == (False, True, held.reservation_id)
    assert spend_of(service) == (130, 90, 90)  # the retry held nothing more


def test_a_resource_cap_refuses_a_hold_the_period_cap_would_allow(harness: SpendHarness) -> None:
    service = capped(harness, 10_000, resources={"gpu": 50})
    reservations = harness.reservations(service)
    reservations.reserve("acme", "gpu", Decimal(10), ttl=TTL)
    with pytest.raises(SpendCapReachedError) as refused:
        reservations.reserve("acme", "gpu", Decimal(1), ttl=TTL)
    assert (refused.value.refused.scope, refused.value.refused.spend) == ("gpu", 50)
    assert spend_of(service, "gpu") == (10, 50, 50)


def test_a_cancel_gives_back_exactly_the_rated_cost_across_tiers(harness: SpendHarness) -> None:
    service = capped(harness, 2000)
    reservations = harness.reservations(service)
    assert service.consume("acme", "tokens", Decimal(250)).allowed  # 150 x 3 = 450
    held, _ = reservations.reserve("acme", "tokens", Decimal(100), ttl=TTL)  # 250 -> 350: 150 + 50 + 100
    assert spend_of(service) == (350, 750, 750)
    cancelled, _ = reservations.cancel("acme", held.reservation_id)
    assert cancelled.state is ReservationState.CANCELLED
    assert spend_of(service) == (250, 450, 450)
    with pytest.raises(ConflictError):
        reservations.settle("acme", held.reservation_id, Decimal(1))  # resolved once: nothing moves again
    assert spend_of(service) == (250, 450, 450)


def test_the_sweep_gives_an_expired_holds_cost_back(harness: SpendHarness) -> None:
    harness.start("acme", SpendCapRequest(currency="usd", amount=2000))
    later = Later()
    service = harness.service(clock=later)
    reservations = harness.reservations(service)
    held, _ = reservations.reserve("acme", "tokens", Decimal(250), ttl=timedelta(seconds=5))
    assert spend_of(service) == (250, 450, 450)
    later.offset = timedelta(seconds=30)
    report = reservations.sweep()
    assert report.expired == 1
    assert reservations.get("acme", held.reservation_id).state is ReservationState.EXPIRED
    assert spend_of(service) == (0, 0, 0)


def test_releases_give_back_the_rated_cost_keyed_and_by_quantity(harness: SpendHarness) -> None:
    service = capped(harness, 5000)
    assert service.consume("acme", "tokens", Decimal(300), idempotency_key="c-1").allowed
    assert service.consume("acme", "tokens", Decimal(150)).allowed
    assert spend_of(service) == (450, 950, 950)  # 600 + 50 + 150 x 2
    released = service.release("acme", "tokens", idempotency_key="c-1")
    assert released.quantity == 300
    assert spend_of(service) == (150, 150, 150)
    again = service.release("acme", "tokens", idempotency_key="c-1")
    assert (again.quantity, again.replayed) == (0, True)
    assert spend_of(service) == (150, 150, 150)
    service.release("acme", "tokens", Decimal(100))  # into the free units
    assert spend_of(service) == (50, 0, 0)
