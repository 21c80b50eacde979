"""Spend caps per entity on DynamoDB Local (plan `metered`: tokens free up to 100, then 3 / unit): a take
for an entity is counted at every level of the entity's chain and on the period's spend in one transaction,
the step also added to the entity's line; a hard cap on an entity refuses its take with 402
`spend_cap_reached` (scope `entity:<id>`) while other entities and the tenant itself go on. Reservations for
an entity hold, settle and give back on its line too."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing_platform.entitlements.service import EntitlementService
from billing_platform.errors import ConflictError, SpendCapReachedError
from billing_platform.spend.models import SpendCapRequest
from tests.factories.spend import OPERATOR, SpendHarness

pytestmark = [pytest.mark.ddblocal, pytest.mark.xdist_group("ddblocal")]

TTL = timedelta(seconds=60)


@pytest.fixture
def harness(ddb_local_tables: dict[str, str], dynamodb_local: Any) -> SpendHarness:
    built = SpendHarness(ddb_local_tables, dynamodb_local.endpoint_url)
    built.start("acme", None)
    for entity in ("user-a", "user-b"):
        built.entities().create("acme", entity, actor=OPERATOR)
    return built


def capped(harness: SpendHarness, **extra: Any) -> EntitlementService:
    harness.service().spend_caps.set_cap("acme", SpendCapRequest(currency="usd", **extra), actor=OPERATOR)
    return harness.service()


def test_an_entitys_cap_refuses_its_take_and_leaves_the_others_going(harness: SpendHarness) -> None:
    service = capped(harness, amount=10_000, entities={"user-a": 300})
    assert service.consume("acme", "tokens", Decimal(100), entity_id="user-a").allowed  # the free units
    assert service.consume("acme", "tokens", Decimal(100), entity_id="user-a").allowed  # 300
    with pytest.raises(SpendCapReachedError) as refused:
        service.consume("acme", "tokens", Decimal(1), entity_id="user-a")
    detail = refused.value.refused
    assert (detail.scope, detail.cap, detail.spend, detail.cost) == ("entity:user-a", 300, 300, 3)
    assert service.consume("acme", "tokens", Decimal(50), entity_id="user-b").allowed
    assert service.consume("acme", "tokens", Decimal(10)).allowed
    _end, state = service.spend_caps.state("acme")
    assert state.by_entity == {"user-a": Decimal(300), "user-b": Decimal(150)}
    assert (state.used_of("tokens"), state.total) == (260, 480)
    assert service.check("acme", "tokens", Decimal(1)).used == 260


def test_a_keyed_take_for_an_entity_is_counted_once(harness: SpendHarness) -> None:
    service = capped(harness, amount=10_000)
    first = service.consume("acme", "tokens", Decimal(150), idempotency_key="e-1", entity_id="user-b")
    again = service.consume("acme", "tokens", Decimal(150), idempotency_key="e-1", entity_id="user-b")
    assert (first.allowed, again.replayed) == (True, True)
    _end, state = service.spend_caps.state("acme")
    assert (state.used_of("tokens"), state.total, state.by_entity) == (150, 150, {"user-b": Decimal(150)})


def test_the_period_cap_still_holds_for_takes_for_entities(harness: SpendHarness) -> None:
    service = capped(harness, amount=200)
    assert service.consume("acme", "tokens", Decimal(160), entity_id="user-a").allowed  # 180
    with pytest.raises(SpendCapReachedError) as refused:
        service.consume("acme", "tokens", Decimal(10), entity_id="user-b")
    assert (refused.value.refused.scope, refused.value.refused.spend) == ("period", 180)


def test_releases_for_an_entity_stay_refused_under_a_cap(harness: SpendHarness) -> None:
    service = capped(harness, amount=10_000)
    assert service.consume("acme", "tokens", Decimal(5), entity_id="user-a").allowed
    with pytest.raises(ConflictError) as refused:
        service.release("acme", "tokens", Decimal(1), entity_id="user-a")
    assert refused.value.code == "spend_cap_unsupported"


def test_reservations_for_an_entity_hold_settle_and_give_back_on_its_line(harness: SpendHarness) -> None:
    service = capped(harness, amount=10_000, entities={"user-a": 300})
    reservations = harness.reservations(service)
    held, _ = reservations.reserve("acme", "tokens", Decimal(150), ttl=TTL, entity_id="user-a")  # 50 x 3
    with pytest.raises(SpendCapReachedError) as refused:
        reservations.reserve("acme", "tokens", Decimal(100), ttl=TTL, entity_id="user-a")  # 300 more > 150 left
    assert (refused.value.refused.scope, refused.value.refused.spend) == ("entity:user-a", 150)
    settled, _ = reservations.settle("acme", held.reservation_id, Decimal(250))  # the cap allows 50 of the 100
    assert (settled.charged, settled.uncovered) == (200, 50)
    other, _ = reservations.reserve("acme", "tokens", Decimal(50), ttl=TTL, entity_id="user-b")
    _end, state = service.spend_caps.state("acme")
    assert state.by_entity == {"user-a": Decimal(300), "user-b": Decimal(150)}
    reservations.cancel("acme", other.reservation_id)
    _end, state = service.spend_caps.state("acme")
    assert state.by_entity == {"user-a": Decimal(300), "user-b": Decimal(0)}
    assert (state.used_of("tokens"), state.total) == (200, 300)
    assert service.check("acme", "tokens", Decimal(1)).used == 200


def test_an_entity_cap_names_a_valid_entity_id() -> None:
    with pytest.raises(ValueError, match="not an entity id"):
        SpendCapRequest(currency="usd", amount=100, entities={"bad id!": 10})
