"""The async face never blocks the event loop, proven on DynamoDB Local: 200 concurrent awaited consumes
with a heartbeat coroutine ticking beside them. The proof is not a timing: every DynamoDB request is
recorded with the thread that sent it, and none may come from the event loop's thread (the control
case, the blocking face called inside a coroutine, shows that the check catches a blocked loop). The
heartbeat's worst gap is reported (printed and recorded as a test property), not asserted."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing_platform import EntitlementEnforcer, UsageAggregator
from billing_platform.clients import dynamodb
from billing_platform.enforcer import shared_service
from billing_platform.entitlements.models import EntitlementCheck

pytestmark = [pytest.mark.ddblocal, pytest.mark.xdist_group("ddblocal")]

CONSUMES = 200
FREE_EXECUTIONS = 100


class Heartbeat:
    """Ticks every millisecond while the work runs; remembers the longest gap between ticks and how
    many ticks fell while DynamoDB requests were in flight."""

    def __init__(self) -> None:
        self.worst_gap = 0.0
        self.ticks_in_flight = 0
        self.in_flight = 0
        self.stop = asyncio.Event()

    async def run(self) -> None:
        last = time.perf_counter()
        while not self.stop.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.worst_gap = max(self.worst_gap, now - last)
            last = now
            if self.in_flight:
                self.ticks_in_flight += 1


def senders() -> list[int]:
    """Thread ids of every DynamoDB request the layer's client sends from now on."""
    threads: list[int] = []
    dynamodb().meta.events.register("before-send.dynamodb.*", lambda **_: threads.append(threading.get_ident()))
    return threads


async def beside_heartbeat(work: Callable[[Heartbeat], Awaitable[list[Any]]]) -> tuple[list[Any], Heartbeat, int]:
    beat = Heartbeat()
    ticker = asyncio.create_task(beat.run())
    await asyncio.sleep(0.01)
    try:
        results = await work(beat)
    finally:
        beat.stop.set()
        await ticker
    return results, beat, threading.get_ident()


@pytest.fixture
def tenant(ddb_local_tables: dict[str, str]) -> str:
    now = datetime.now(UTC)
    shared_service().apply_plan(
        "t-heartbeat",
        "free",
        period_start=now - timedelta(days=1),
        period_end=now + timedelta(days=29),
        source_version=1,
    )
    return "t-heartbeat"


def test_200_concurrent_awaited_consumes_never_block_the_loop(
    tenant: str, record_property: Callable[[str, object], None]
) -> None:
    enforcer = EntitlementEnforcer()
    enforcer.sync.check_and_record(tenant, "executions", Decimal("0.5"))  # warm: layout and client known
    threads = senders()

    async def consume_all(beat: Heartbeat) -> list[Any]:
        async def one() -> EntitlementCheck:
            beat.in_flight += 1
            try:
                return await enforcer.check_and_record(tenant, "executions", Decimal(1))
            finally:
                beat.in_flight -= 1

        return list(await asyncio.gather(*(one() for _ in range(CONSUMES))))

    checks, beat, loop_thread = asyncio.run(beside_heartbeat(consume_all))
    threads = list(threads)  # the requests of the 200 consumes, before this test's own checks add theirs

    granted = sum(c.allowed for c in checks)
    assert granted == FREE_EXECUTIONS - 1  # exactly what was left after the warm-up's half
    assert enforcer.sync.check(tenant, "executions").used == Decimal("99.5")
    assert len(threads) >= CONSUMES
    assert loop_thread not in threads  # no request was sent from the event loop's thread
    assert beat.ticks_in_flight > 0  # the heartbeat kept running while requests were out
    record_property("heartbeat_worst_gap_ms", round(beat.worst_gap * 1000, 1))
    print(
        f"\n{CONSUMES} awaited consumes: heartbeat worst gap {beat.worst_gap * 1000:.1f} ms, "
        f"{beat.ticks_in_flight} ticks while in flight, {len(set(threads))} sender threads"
    )


def test_control_the_blocking_face_inside_a_coroutine_is_caught(tenant: str) -> None:
    """What the check above would see if the async face blocked: requests from the loop's thread."""
    enforcer = EntitlementEnforcer()
    threads = senders()

    async def blocking(beat: Heartbeat) -> list[Any]:
        return [enforcer.sync.check_and_record(tenant, "executions", Decimal(1)) for _ in range(5)]

    _, beat, loop_thread = asyncio.run(beside_heartbeat(blocking))
    assert len(threads) == 5
    assert set(threads) == {loop_thread}
    print(f"\ncontrol (blocking face in the loop): heartbeat worst gap {beat.worst_gap * 1000:.1f} ms")


def test_aggregator_reads_run_off_the_loop(tenant: str) -> None:
    aggregator = UsageAggregator()
    threads = senders()

    async def read(beat: Heartbeat) -> list[Any]:
        return list(await asyncio.gather(*(aggregator.get_usage_trends(tenant, "executions", 7) for _ in range(20))))

    trends, _, loop_thread = asyncio.run(beside_heartbeat(read))
    assert len(threads) == 20
    assert [t.total for t in trends] == [0] * 20  # nothing aggregated for this tenant
    assert threads
    assert loop_thread not in threads
