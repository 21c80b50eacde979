"""Pure logic of usage aggregation: day-item planning keeps every promise the watermarks need, and
`cover_range` tiles any hour-aligned range exactly."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from billing_platform.usage.aggregator import MAX_EXPRESSION_CHARS, UsageInsert, next_delta, plan_days
from billing_platform.usage.layout import ENTITY_MARK, TOTAL, day_of, group_cell, hour_cell, watermark_attribute
from billing_platform.usage.models import Granularity, bucket_start, cover_range, next_bucket
from billing_platform.usage.repository import AggregateRepository, raw_key

BASE = datetime(2026, 11, 25, 10, tzinfo=UTC)

insert_specs = st.lists(
    st.tuples(
        st.integers(0, 40),  # tenant
        st.sampled_from(["tokens", "api_calls", "executions"]),
        st.integers(0, 24 * 40),  # hours back
        st.integers(1, 10**6),
    ),
    min_size=1,
    max_size=600,
)


def make_inserts(specs: list[tuple[int, str, int, int]]) -> list[UsageInsert]:
    out = []
    for seq, (tenant, resource, hours, qty) in enumerate(specs):
        tenant_id = f"t{tenant}"
        out.append(
            UsageInsert(
                sequence_number=str(1000 + seq),
                watermark=watermark_attribute("s", raw_key(tenant_id, resource, f"use_{seq}")["pk"]),
                tenant_id=tenant_id,
                resource_type=resource,
                quantity=Decimal(qty),
                timestamp=BASE - timedelta(hours=hours),
            )
        )
    return out


@settings(max_examples=60, deadline=None)
@given(insert_specs, st.randoms(use_true_random=False))
def test_each_write_covers_a_stream_order_prefix_of_its_day_item(
    specs: list[tuple[int, str, int, int]], rng: random.Random
) -> None:
    inserts = make_inserts(specs)
    shuffled = list(inserts)
    rng.shuffle(shuffled)
    days = plan_days(shuffled)
    # Every record is in exactly its day item, each item's records in stream order.
    for day, members in days.items():
        assert [int(i.sequence_number) for i in members] == sorted(int(i.sequence_number) for i in members)
        assert all(day_of(i.timestamp) == day.day for i in members)
        assert all((i.tenant_id, i.resource_type) == (day.tenant_id, day.resource_type) for i in members)
    assert sum(len(m) for m in days.values()) == len(inserts)
    for day, members in days.items():
        rest = members
        while rest:
            delta, taken = next_delta(day, rest)
            covered, rest = rest[:taken], rest[taken:]
            assert taken >= 1
            assert delta.adds[TOTAL] == sum(i.quantity for i in covered)
            for hour in {i.timestamp.hour for i in covered}:
                assert delta.adds[hour_cell(hour)] == sum(i.quantity for i in covered if i.timestamp.hour == hour)
            # Per usage partition key: the first and last sequence numbers of the covered records of that key.
            for attribute, (first, last) in delta.watermarks.items():
                mine = [int(i.sequence_number) for i in covered if i.watermark == attribute]
                assert (int(first), int(last)) == (min(mine), max(mine))
            assert set(delta.watermarks) == {i.watermark for i in covered}


def test_a_day_item_carries_at_most_raw_spread_watermarks() -> None:
    from billing_platform.usage.repository import RAW_SPREAD

    specs = [(1, "tokens", 0, 1)] * 400
    days = plan_days(make_inserts(specs))
    assert len(days) == 1
    assert all(len(next_delta(day, m)[0].watermarks) <= RAW_SPREAD for day, m in days.items())


def test_an_item_with_more_counters_than_one_expression_holds_is_written_in_stream_order_parts() -> None:
    inserts = [
        UsageInsert(
            sequence_number=str(5000 + n),
            watermark="w_00",
            tenant_id="t1",
            resource_type="tokens",
            quantity=Decimal(1),
            timestamp=BASE.replace(hour=n % 24),
            dimensions=(("model", f"m{n % 20}"),),
            entity_id=f"user{n}",
        )
        for n in range(2_000)
    ]
    (day, members), *_ = plan_days(inserts).items()
    parts = []
    while members:
        delta, taken = next_delta(day, members)
        assert len(delta.adds) * 11 <= MAX_EXPRESSION_CHARS
        parts.append(delta)
        members = members[taken:]
    assert len(parts) > 1
    assert sum(p.adds[TOTAL] for p in parts) == 2_000
    bounds = [(int(p.watermarks["w_00"][0]), int(p.watermarks["w_00"][1])) for p in parts]
    assert all(a[1] < b[0] for a, b in itertools.pairwise(bounds))
    assert parts[0].adds[group_cell(ENTITY_MARK, 0, "user0")] == 1
    assert parts[0].adds[group_cell("model", 0, "m0")] >= 1
    # The writes as sent (coded counters, dictionary entries, conditions) stay inside DynamoDB's 4 KB.
    repo = AggregateRepository()
    for part in parts:
        update = repo.day_update(part)["Update"]
        assert len(update["UpdateExpression"]) <= 4096
        assert len(update["ConditionExpression"]) <= 4096


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 24 * 800), st.integers(1, 24 * 400))
def test_cover_range_tiles_any_hour_aligned_range_exactly(start_hours: int, length_hours: int) -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=start_hours)
    end = start + timedelta(hours=length_hours)
    cursor = start
    for granularity, label in cover_range(start, end):
        begin = bucket_start(granularity, label)
        assert begin == cursor
        cursor = next_bucket(granularity, begin)
    assert cursor == end


def test_cover_range_uses_whole_months_inside_the_range() -> None:
    tiles = cover_range(datetime(2026, 9, 30, 22, tzinfo=UTC), datetime(2026, 12, 2, 1, tzinfo=UTC))
    assert (Granularity.MONTH, "2026-10") in tiles
    assert (Granularity.MONTH, "2026-11") in tiles
    assert len(tiles) == 2 + 2 + 1 + 1  # 2 hours, 2 months, 1 day, 1 hour
