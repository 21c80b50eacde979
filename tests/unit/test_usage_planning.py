"""Pure logic of usage aggregation and queries: chunk planning keeps every promise the checkpoint needs,
and `cover_range` tiles any hour-aligned range exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from billing_platform.usage.aggregator import UsageInsert, plan_chunks
from billing_platform.usage.models import Granularity, bucket_start, cover_range, next_bucket
from billing_platform.usage.repository import TRANSACT_MAX, raw_key

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
                checkpoint_key="CKPT#s#" + raw_key(tenant_id, resource, f"use_{seq}")["pk"],
                tenant_id=tenant_id,
                resource_type=resource,
                quantity=Decimal(qty),
                timestamp=BASE - timedelta(hours=hours),
            )
        )
    return out


@settings(max_examples=60, deadline=None)
@given(insert_specs)
def test_chunks_fit_a_transaction_keep_per_key_order_and_lose_nothing(specs: list[tuple[int, str, int, int]]) -> None:
    inserts = make_inserts(specs)
    chunks = plan_chunks(inserts)
    assert all(chunk.size() <= TRANSACT_MAX for chunk in chunks)
    flat = [i for chunk in chunks for i in chunk.inserts]
    assert sorted(i.sequence_number for i in flat) == sorted(i.sequence_number for i in inserts)
    # Per checkpoint key, records are applied in stream order (what the checkpoint condition relies on).
    by_key: dict[str, list[int]] = {}
    for insert in flat:
        by_key.setdefault(insert.checkpoint_key, []).append(int(insert.sequence_number))
    assert all(seqs == sorted(seqs) for seqs in by_key.values())
    # Each chunk's checkpoint covers exactly its records of that key: first and last sequence numbers.
    for chunk in chunks:
        for key, (first, last) in chunk.checkpoints.items():
            mine = [int(i.sequence_number) for i in chunk.inserts if i.checkpoint_key == key]
            assert (int(first), int(last)) == (min(mine), max(mine))
    # Coalesced rows add up to the records' quantities (three rows per record: hour, day, month).
    assert sum(row[0] for chunk in chunks for row in chunk.rows.values()) == 3 * sum(i.quantity for i in inserts)


def test_records_of_one_tenant_and_resource_coalesce_into_few_transactions() -> None:
    specs = [(t % 20, ("tokens", "api_calls", "executions", "storage_mb")[t % 4], 0, 1) for t in range(500)]
    chunks = plan_chunks(make_inserts(specs))
    assert len(chunks) <= 3


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
