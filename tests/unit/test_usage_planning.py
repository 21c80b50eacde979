"""Pure logic of usage aggregation and queries: row planning keeps every promise the watermarks need,
and `cover_range` tiles any hour-aligned range exactly."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from billing_platform.usage.aggregator import UsageInsert, plan_rows, row_delta
from billing_platform.usage.models import Granularity, bucket_label, bucket_start, cover_range, next_bucket
from billing_platform.usage.repository import raw_key, watermark_attribute

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
def test_one_write_per_row_covers_its_records_in_stream_order(
    specs: list[tuple[int, str, int, int]], rng: random.Random
) -> None:
    inserts = make_inserts(specs)
    shuffled = list(inserts)
    rng.shuffle(shuffled)
    rows = plan_rows(shuffled)
    # Every record is in exactly its hour, day and month rows, each row in stream order.
    for row, members in rows.items():
        assert [int(i.sequence_number) for i in members] == sorted(int(i.sequence_number) for i in members)
        assert all(bucket_label(row.granularity, i.timestamp) == row.label for i in members)
        assert all((i.tenant_id, i.resource_type) == (row.tenant_id, row.resource_type) for i in members)
    assert sum(len(m) for m in rows.values()) == 3 * len(inserts)
    for row, members in rows.items():
        delta = row_delta(row, members)
        assert delta.quantity == sum(i.quantity for i in members)
        assert delta.records == len(members)
        # Per usage partition key: the first and last sequence numbers of this row's records of that key.
        for attribute, (first, last) in delta.watermarks.items():
            mine = [int(i.sequence_number) for i in members if i.watermark == attribute]
            assert (int(first), int(last)) == (min(mine), max(mine))
        assert set(delta.watermarks) == {i.watermark for i in members}


def test_a_row_carries_at_most_raw_spread_watermarks() -> None:
    from billing_platform.usage.repository import RAW_SPREAD

    specs = [(1, "tokens", 0, 1)] * 400
    rows = plan_rows(make_inserts(specs))
    assert len(rows) == 3
    assert all(len(row_delta(row, m).watermarks) <= RAW_SPREAD for row, m in rows.items())


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
