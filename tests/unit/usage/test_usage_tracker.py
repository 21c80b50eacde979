"""UsageTracker: batching within SQS limits, retries, nothing dropped, thread safety, lifecycle."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing_platform.errors import BillingError, UnprocessableError, UsageBufferFull, UsageFlushError
from billing_platform.usage.dimensions import DimensionGate
from billing_platform.usage.models import SQS_MAX_BYTES, UsageMessage
from billing_platform.usage.queue import SendFailure, SendOutcome
from billing_platform.usage.tracker import SyncUsageTracker, UsageTracker
from tests.factories.usage import MemoryValues


class RecordingSender:
    """Accepts everything, or refuses / raises as told; keeps every request it got."""

    def __init__(self) -> None:
        self.requests: list[list[str]] = []
        self.refuse: set[int] = set()  # entry indices refused on the next request only
        self.down = False
        self.lock = threading.Lock()

    def send_batch(self, bodies: Sequence[str]) -> SendOutcome:
        with self.lock:
            if self.down:
                raise ConnectionError("queue unreachable")
            self.requests.append(list(bodies))
            refused, self.refuse = self.refuse, set()
            return SendOutcome([SendFailure(i, "InternalError", False) for i in sorted(refused) if i < len(bodies)])

    def delivered_ids(self, skip_refused: bool = False) -> list[str]:
        return [
            r.record_id for req in self.requests for body in req for r in UsageMessage.model_validate_json(body).records
        ]


def async_tracker(sender: RecordingSender, **kwargs: object) -> UsageTracker:
    kwargs.setdefault("sleep", lambda _: None)
    return UsageTracker(sender, **kwargs)  # type: ignore[arg-type]


def tracker(sender: RecordingSender, **kwargs: object) -> SyncUsageTracker:
    """The blocking face, as a Lambda uses it."""
    return async_tracker(sender, **kwargs).sync


def test_many_records_per_message_and_ten_messages_per_request() -> None:
    sender = RecordingSender()
    t = tracker(sender, batch_size=100)
    for i in range(999):
        t.track("t1", "tokens", i + 1)
    assert sender.requests == []  # not a full request yet
    t.track("t1", "tokens", 1)  # the 1000th record fills ten messages: sent at once
    assert len(sender.requests) == 1
    assert len(sender.requests[0]) == 10
    assert all(len(UsageMessage.model_validate_json(b).records) == 100 for b in sender.requests[0])
    assert t.get_stats() == {"tracked": 1000, "flushed": 1000, "failed": 0, "buffered": 0, "batches": 1, "messages": 10}


def test_messages_and_requests_stay_within_the_sqs_size_limit() -> None:
    sender = RecordingSender()
    t = tracker(sender, batch_size=10_000)
    big = {f"k{i}": "x" * 90 for i in range(10)}  # ~1 KB of metadata per record
    for _ in range(1500):
        t.track("t1", "api_calls", 1, metadata=big)
    assert t.flush() == 1500
    for request in sender.requests:
        assert len(request) <= 10
        assert sum(len(b.encode()) for b in request) <= SQS_MAX_BYTES
        assert all(len(b.encode()) <= SQS_MAX_BYTES for b in request)
    assert len(sender.delivered_ids()) == 1500


def test_refused_entries_are_retried_and_order_is_kept() -> None:
    sender = RecordingSender()
    t = tracker(sender, batch_size=2)
    ids = [t.track("t1", "executions", 1) for _ in range(10)]
    sender.refuse = {1, 3}
    assert t.flush() == 10
    assert sorted(sender.delivered_ids()) == sorted(ids + ids[2:4] + ids[6:8])  # refused ones went twice
    assert t.get_stats()["failed"] == 0
    assert len(sender.requests) == 2


def test_unsendable_records_stay_buffered_are_counted_and_surfaced() -> None:
    sender = RecordingSender()
    t = tracker(sender, batch_size=5)
    ids = [t.track("t1", "tokens", 3) for _ in range(12)]
    sender.down = True
    assert t.flush() == 0
    stats = t.get_stats()
    assert (stats["buffered"], stats["failed"], stats["flushed"]) == (12, 12, 0)
    with pytest.raises(UsageFlushError) as raised:
        t.stop()
    assert raised.value.details["unsent"] == 12
    later = t.track("t1", "tokens", 4)
    sender.down = False
    assert t.flush() == 13
    assert sender.delivered_ids() == [*ids, later]  # original order, nothing lost
    assert t.get_stats()["buffered"] == 0


def test_drain_unsent_hands_the_records_over() -> None:
    sender = RecordingSender()
    sender.down = True
    t = tracker(sender)
    rid = t.track("t1", "tokens", "2.5")
    t.flush()
    drained = t.drain_unsent()
    assert [(r["record_id"], r["quantity"]) for r in drained] == [(rid, "2.5")]
    assert t.get_stats()["buffered"] == 0


def test_a_full_buffer_refuses_new_records_instead_of_dropping() -> None:
    sender = RecordingSender()
    sender.down = True
    t = tracker(sender, batch_size=1000, max_buffered=3)
    for _ in range(3):
        t.track("t1", "tokens", 1)
    with pytest.raises(UsageBufferFull):
        t.track("t1", "tokens", 1)
    assert t.get_stats()["tracked"] == 3


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("t1", "gold_bars", 1), {}),
        (("t1", "tokens", -1), {}),
        (("t1", "tokens", 0), {}),
        (("t1", "tokens", float("nan")), {}),
        (("t1", "tokens", "abc"), {}),
        (("t1", "tokens", Decimal("0.0000001")), {}),
        (("bad tenant!", "tokens", 1), {}),
        (("t1", "tokens", 1), {"timestamp": datetime(2026, 1, 1)}),  # naive
        (("t1", "tokens", 1), {"timestamp": datetime.now(UTC) + timedelta(hours=1)}),
        (("t1", "tokens", 1), {"timestamp": datetime.now(UTC) - timedelta(days=60)}),
        (("t1", "tokens", 1), {"metadata": {"k": "x" * 300}}),
    ],
    ids=[
        "unknown-resource",
        "negative",
        "zero",
        "nan",
        "not-a-number",
        "too-precise",
        "bad-tenant",
        "naive-time",
        "future",
        "too-old",
        "metadata-too-long",
    ],
)
def test_a_bad_record_raises_at_track_time_and_is_never_buffered(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    t = tracker(RecordingSender())
    with pytest.raises(BillingError):
        t.track(*args, **kwargs)  # type: ignore[arg-type]
    assert (t.get_stats()["tracked"], t.get_stats()["buffered"]) == (0, 0)


def test_record_ids_are_made_at_track_time_or_kept() -> None:
    sender = RecordingSender()
    t = tracker(sender)
    made = t.track("t1", "tokens", 1)
    kept = t.track("t1", "tokens", 1, record_id="client-id-42")
    t.flush()
    assert made.startswith("use_")
    assert kept == "client-id-42"
    assert sender.delivered_ids() == [made, kept]


def test_helpers_track_the_catalog_resources() -> None:
    sender = RecordingSender()
    t = tracker(sender, dimension_gate=DimensionGate(registry=MemoryValues()))
    t.track_execution("t1", "wf_1")
    t.track_tokens("t1", 1500, "gpt-x")
    t.track_api_call("t1", "/v1/things", "post")
    t.track_storage("t1", 12.5, "s3")
    t.flush()
    records = json.loads(sender.requests[0][0])["records"]
    assert [(r["resource_type"], r["quantity"]) for r in records] == [
        ("executions", "1"),
        ("tokens", "1500"),
        ("api_calls", "1"),
        ("storage_mb", "12.5"),
    ]
    assert records[2]["metadata"] == {"endpoint": "/v1/things", "method": "POST"}
    assert records[1]["dimensions"] == {"model": "gpt-x"}


def test_concurrent_tracking_loses_and_duplicates_nothing() -> None:
    sender = RecordingSender()
    t = tracker(sender, batch_size=7)
    ids: list[list[str]] = [[] for _ in range(8)]

    def work(slot: int) -> None:
        for _ in range(400):
            ids[slot].append(t.track("t1", "tokens", 1))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    t.flush()
    delivered = sender.delivered_ids()
    assert sorted(delivered) == sorted(i for slot in ids for i in slot)
    assert len(set(delivered)) == 3200


def test_background_flush_sends_without_being_asked() -> None:
    sender = RecordingSender()
    with tracker(sender, flush_interval_seconds=0.05) as t:
        rid = t.track("t1", "tokens", 1)
        deadline = time.monotonic() + 10
        while not sender.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sender.delivered_ids() == [rid]


def test_context_managers_flush_on_exit() -> None:
    sender = RecordingSender()
    with tracker(sender, flush_interval_seconds=3600) as t:
        t.track("t1", "tokens", 1)
    assert len(sender.delivered_ids()) == 1

    async def main() -> None:
        async with async_tracker(sender, flush_interval_seconds=3600) as t2:
            await t2.track("t1", "tokens", 2)

    asyncio.run(main())
    assert len(sender.delivered_ids()) == 2


def test_exit_does_not_hide_the_original_error() -> None:
    sender = RecordingSender()
    sender.down = True
    t = tracker(sender, flush_interval_seconds=3600)

    def failing_work() -> None:
        with t:
            t.track("t1", "tokens", 1)
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        failing_work()
    assert t.get_stats()["buffered"] == 1


def test_flush_after_sends_before_the_handler_returns_even_on_error() -> None:
    sender = RecordingSender()
    t = tracker(sender, flush_interval_seconds=3600)

    @t.flush_after
    def handler(event: dict[str, int], context: object) -> int:
        t.track("t1", "executions", 1)
        if event.get("fail"):
            raise RuntimeError("handler failed")
        return 7

    assert handler({}, None) == 7
    assert len(sender.delivered_ids()) == 1
    with pytest.raises(RuntimeError):
        handler({"fail": 1}, None)
    assert len(sender.delivered_ids()) == 2


def test_validation_error_names_the_field() -> None:
    t = tracker(RecordingSender())
    with pytest.raises(UnprocessableError, match="quantity"):
        t.track("t1", "tokens", -3)
