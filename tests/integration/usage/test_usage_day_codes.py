"""On DynamoDB Local: the aggregator's coded counters stay exact when a value's code is already another
value's in the item (the write is refused, re-read, and the value goes in plain form), under a replayed
batch, and after a rebuild-style replacement of the item."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from billing_platform.usage.aggregator import UsageAggregationService, UsageInsert
from billing_platform.usage.layout import ENTITY_MARK, DayKey, entry_name, group_cell, value_code, watermark_attribute
from billing_platform.usage.queries import SyncUsageAggregator
from billing_platform.usage.repository import AggregateRepository, raw_key

COLLIDING = ("user-2347", "user-2931")
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


def insert(seq: int, entity: str, quantity: int, model: str = "gpt-4o") -> UsageInsert:
    usage_pk = raw_key("acme", "tokens", f"use_{seq}")["pk"]
    return UsageInsert(
        sequence_number=str(10**20 + seq),
        watermark=watermark_attribute("test-stream", usage_pk),
        tenant_id="acme",
        resource_type="tokens",
        quantity=Decimal(quantity),
        timestamp=NOW + timedelta(minutes=seq % 50),
        dimensions=(("model", model),),
        entity_id=entity,
    )


def by_entity() -> dict[str, Decimal]:
    series = SyncUsageAggregator().get_usage(
        "acme", "tokens", NOW, NOW + timedelta(hours=1), granularity="hour", group_by="entity", limit=100
    )
    assert series.ungrouped == 0
    assert series.other == 0
    return {g.value: g.total for g in series.groups}


def test_a_taken_code_sends_the_value_plain_and_every_answer_stays_exact(ddb_local_tables: dict[str, str]) -> None:
    first, second = COLLIDING
    assert value_code(ENTITY_MARK, first) == value_code(ENTITY_MARK, second)
    service = UsageAggregationService()
    one = [insert(1, first, 3), insert(2, "bob", 4)]
    two = [insert(3, second, 5), insert(4, first, 7), insert(5, second, 11)]
    assert service.apply(one).applied == 2
    result = service.apply(two)
    assert (result.applied, result.failed_from) == (3, None)
    assert by_entity() == {first: Decimal(10), second: Decimal(16), "bob": Decimal(4)}

    # The stored item: the first value owns the code, the second is counted in plain form.
    day = DayKey("acme", "tokens", NOW.strftime("%Y-%m-%d"))
    item: dict[str, Any] = AggregateRepository().client.get_item(
        TableName=AggregateRepository().table, Key=day.key(), ConsistentRead=True
    )["Item"]
    assert item[entry_name("@", first)] == {"S": f"@|{first}"}
    assert item[group_cell("@", NOW.hour, second)] == {"N": "16"}

    # A replay of both batches (Lambda's retry) adds nothing; later records still land once.
    replay = service.apply(one + two)
    assert (replay.applied, replay.skipped_duplicates) == (0, 5)
    service.apply([insert(6, second, 100), insert(7, "bob", 1)])
    assert by_entity() == {first: Decimal(10), second: Decimal(116), "bob": Decimal(5)}
    series = SyncUsageAggregator().get_usage(
        "acme", "tokens", NOW, NOW + timedelta(hours=1), granularity="day", group_by="model"
    )
    assert series.total == 131
    assert [(g.value, g.total) for g in series.groups] == [("gpt-4o", Decimal(131))]


def test_a_replaced_item_is_stored_coded_and_reads_back_the_same(ddb_local_tables: dict[str, str]) -> None:
    first, second = COLLIDING
    day = DayKey("acme", "tokens", NOW.strftime("%Y-%m-%d"))
    adds = {
        "t": Decimal(9),
        f"h{NOW.hour:02d}": Decimal(9),
        group_cell("@", NOW.hour, first): Decimal(2),
        group_cell("@", NOW.hour, second): Decimal(3),
        group_cell("@", NOW.hour, "bob"): Decimal(4),
    }
    repo = AggregateRepository()
    assert repo.replace_day(day, adds, None, set())
    assert by_entity() == {first: Decimal(2), second: Decimal(3), "bob": Decimal(4)}
    item = repo.client.get_item(TableName=repo.table, Key=day.key(), ConsistentRead=True)["Item"]
    assert entry_name("@", "bob") in item
    assert group_cell("@", NOW.hour, "bob") not in item
