"""The library's async faces on Amazon's DynamoDB Local: 200 concurrent awaited consumes beside a
heartbeat coroutine (its worst and median gap: how long the event loop was unavailable), against the
blocking face called inside a coroutine (the loop is held for each whole request); and the cold import
cost of `from billing_platform import X` per name (median of 5 fresh interpreters).

Run: `.venv/bin/python -m tests.bench bench_async_faces`. Shared 2-core machine: compare the rows, not
absolute values.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from billing_platform import EntitlementEnforcer
from billing_platform.entitlements.service import EntitlementService
from billing_platform.settings import get_settings
from local_stack.dynamodb_local import DynamoDBLocal
from local_stack.provision import create_tables

ROOT = Path(__file__).resolve().parents[2]
CONSUMES = 200
IMPORTS = ("UsageTracker", "EntitlementEnforcer", "UsageAggregator", "MockBillingProvider", "StripeBillingProvider")


async def with_heartbeat(work: Callable[[], Awaitable[Any]]) -> tuple[float, list[float]]:
    gaps: list[float] = []
    done = asyncio.Event()

    started = time.perf_counter()

    async def beat() -> None:
        last = started  # a loop held from the start shows as one long first gap
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
            if done.is_set():
                return

    ticker = asyncio.create_task(beat())
    await work()
    elapsed = time.perf_counter() - started
    done.set()
    await ticker
    return elapsed, gaps


def report(label: str, n: int, elapsed: float, gaps: list[float]) -> None:
    print(
        f"{label:<44} {n / elapsed:7.0f} consumes/s   heartbeat gap: worst {max(gaps) * 1000:7.1f} ms, "
        f"median {statistics.median(gaps) * 1000:5.1f} ms, {len(gaps)} ticks"
    )


def import_cost(name: str) -> float:
    script = (
        f"import time; t = time.perf_counter(); from billing_platform import {name}; print(time.perf_counter() - t)"
    )
    runs = [
        float(
            subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT).stdout
        )
        for _ in range(5)
    ]
    return statistics.median(runs) * 1000


def main() -> None:
    with DynamoDBLocal() as ddb:
        names = create_tables(ddb.client("dynamodb"), prefix="bench-async-")
        os.environ.update(names)
        os.environ.update(
            {
                "AWS_ENDPOINT_URL_DYNAMODB": ddb.endpoint_url,
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
            }
        )
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        get_settings.cache_clear()
        service = EntitlementService()
        start = datetime.now(UTC) - timedelta(days=1)
        for tenant in ("async", "blocking"):
            service.apply_plan(
                tenant, "enterprise", period_start=start, period_end=start + timedelta(days=30), source_version=1
            )
        enforcer = EntitlementEnforcer(service)
        enforcer.sync.check_and_record("async", "executions", Decimal(1))  # warm

        async def awaited() -> None:
            await asyncio.gather(*(enforcer.check_and_record("async", "executions", 1) for _ in range(CONSUMES)))

        async def blocking() -> None:
            for _ in range(CONSUMES // 4):
                enforcer.sync.check_and_record("blocking", "executions", 1)

        print(f"{CONSUMES} concurrent awaited consumes vs the blocking face inside a coroutine (DynamoDB Local):")
        elapsed, gaps = asyncio.run(with_heartbeat(awaited))
        report("async face (await enforcer.check_and_record)", CONSUMES, elapsed, gaps)
        elapsed, gaps = asyncio.run(with_heartbeat(blocking))
        report("blocking face in the loop (anti-pattern)", CONSUMES // 4, elapsed, gaps)

    print("\ncold import, median of 5 fresh interpreters (stripe loaded only by StripeBillingProvider):")
    for name in IMPORTS:
        print(f"  from billing_platform import {name:<24} {import_cost(name):6.0f} ms")
