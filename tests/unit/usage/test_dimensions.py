"""Dimensions and entities on usage records: declared in the catalog, carried on the wire, capped per
tenant x resource x month; a refused record raises and is never buffered or registered."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from billing_platform.catalog.models import DEFAULT_CATALOG, parse_catalog
from billing_platform.errors import DimensionCapReachedError, UndeclaredDimensionError, UnprocessableError
from billing_platform.usage.dimensions import DimensionGate
from billing_platform.usage.models import UsageMessage, build_record
from billing_platform.usage.tracker import UsageTracker
from tests.factories.usage import MemoryValues


class Sent:
    def __init__(self) -> None:
        self.bodies: list[str] = []

    def send_batch(self, bodies: Any) -> Any:
        from billing_platform.usage.queue import SendOutcome

        self.bodies.extend(bodies)
        return SendOutcome()


def tracker(registry: MemoryValues) -> Any:
    return UsageTracker(Sent(), dimension_gate=DimensionGate(registry=registry)).sync


def test_dimensions_and_entity_travel_on_the_wire() -> None:
    sender = Sent()
    t = UsageTracker(sender, dimension_gate=DimensionGate(registry=MemoryValues())).sync
    t.track("t1", "tokens", 10, dimensions={"model": "gpt-4", "region": "eu"}, entity_id="user_7")
    t.flush()
    (record,) = UsageMessage.model_validate_json(sender.bodies[0]).records
    assert record.dimensions == {"model": "gpt-4", "region": "eu"}
    assert record.entity_id == "user_7"


def test_an_undeclared_dimension_is_refused_and_nothing_is_buffered_or_registered() -> None:
    registry = MemoryValues()
    t = tracker(registry)
    with pytest.raises(UndeclaredDimensionError) as caught:
        t.track("t1", "tokens", 1, dimensions={"colour": "red"})
    assert caught.value.http_status == 422
    assert "colour" in caught.value.message
    with pytest.raises(UndeclaredDimensionError):
        t.track("t1", "api_calls", 1, dimensions={"model": "gpt-4"})  # api_calls declares none
    assert t.get_stats()["buffered"] == 0
    assert registry.calls == 0


def test_a_value_past_the_cap_is_refused_and_the_month_resets_it() -> None:
    registry = MemoryValues()
    t = tracker(registry)
    june = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    for n in range(10):  # region: max_values 10 in plans.json
        t.track("t1", "tokens", 1, dimensions={"region": f"r{n}"}, timestamp=june)
    t.track("t1", "tokens", 1, dimensions={"region": "r3"}, timestamp=june)  # known values stay allowed
    with pytest.raises(DimensionCapReachedError) as caught:
        t.track("t1", "tokens", 1, dimensions={"region": "r10"}, timestamp=june)
    assert caught.value.http_status == 422
    assert caught.value.details["cap"] == 10
    t.track("t2", "tokens", 1, dimensions={"region": "r10"}, timestamp=june)  # another tenant has its own
    assert t.get_stats()["buffered"] == 12


def test_entities_have_their_own_cap() -> None:
    registry = MemoryValues()
    t = tracker(registry)
    for n in range(60):  # entity_max_values defaults to 60
        t.track("t1", "executions", 1, entity_id=f"user{n}")
    with pytest.raises(DimensionCapReachedError, match="entities"):
        t.track("t1", "executions", 1, entity_id="user60")


def test_seen_values_cost_no_registry_call() -> None:
    registry = MemoryValues()
    t = tracker(registry)
    for _ in range(50):
        t.track("t1", "tokens", 1, dimensions={"model": "gpt-4"}, entity_id="team_a")
    assert registry.calls == 2


@pytest.mark.parametrize(
    ("dimensions", "entity"),
    [({"model": ""}, None), ({"model": "a|b"}, None), ({"Model": "x"}, None), ({}, "has|pipe"), ({}, "x" * 129)],
)
def test_bad_dimension_values_and_entity_ids_are_422(dimensions: dict[str, str], entity: str | None) -> None:
    with pytest.raises(UnprocessableError):
        build_record("t1", "tokens", 1, dimensions=dimensions, entity_id=entity)


def test_the_catalog_bounds_dimensions() -> None:
    base = json.loads(DEFAULT_CATALOG.read_text())

    def with_tokens(spec: dict[str, Any]) -> str:
        data = json.loads(json.dumps(base))
        data["resource_types"]["tokens"].update(spec)
        return json.dumps(data)

    four = {"dimensions": {n: {"max_values": 5} for n in ("a", "b", "c", "d")}}
    too_many_values = {"dimensions": {"model": {"max_values": 50}}, "entity_max_values": 60}
    for spec in (four, too_many_values, {"dimensions": {"entity": {}}}):
        with pytest.raises(ValueError, match=r"dimension|add up"):
            parse_catalog(with_tokens(spec))
    assert parse_catalog(with_tokens({})).resource_types["tokens"].cap("model") == 20
