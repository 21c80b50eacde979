"""Reservation benchmark on Amazon's DynamoDB Local: AWS requests per reserve, per settle (below, at and
above the estimate), per cancel and per sweep of expired reservations (counted with botocore event hooks:
retries and slow-path reads included), and reserve+settle pairs per second beside consumes per second.

Run: `.venv/bin/python -m tests.bench bench_reservations`. The usage record a settle sends is counted as
SQS requests by a counting sender (the message bodies are those SQS would get); DynamoDB Local on a shared
2-core machine measures the client's work and request count, not DynamoDB's own latency.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from botocore.config import Config

from billing_platform.entitlements.models import add_months
from billing_platform.reservations import ReservationService
from billing_platform.reservations.meter import QueueMeter
from billing_platform.reservations.repository import ReservationRepository
from billing_platform.settings import Settings
from billing_platform.usage.queue import SendOutcome
from local_stack.dynamodb_local import DynamoDBLocal
from local_stack.provision import create_tables
from tests.bench.bench_entitlements import RequestCounter
from tests.factories.catalogs import catalog, plan, quota
from tests.factories.services import entitlement_service

THREADS = 16
PAIRS = 600
CATALOG = catalog(
    {
        "big": plan(quota("1000000000", resource_type="tokens"), name="Big"),
        "sharded": plan(quota("1000000000", resource_type="tokens"), name="Eight shards", shards=8),
    },
    resource_types=("tokens",),
    version="bench",
)


class CountingSender:
    """The usage queue's SendMessageBatch, counted (bodies accepted, nothing sent anywhere)."""

    def __init__(self) -> None:
        self.requests = 0
        self._lock = threading.Lock()

    def send_batch(self, bodies: Sequence[str]) -> SendOutcome:
        with self._lock:
            self.requests += 1
        return SendOutcome()

    def reset(self) -> None:
        with self._lock:
            self.requests = 0


def measure(label: str, counter: RequestCounter, sender: CountingSender, calls: int, call: Callable[[], Any]) -> None:
    """Requests per call, one call at a time (so the counts belong to that call)."""
    counter.reset()
    sender.reset()
    for _ in range(calls):
        call()
    ops = ", ".join(f"{name} {count / calls:.2f}" for name, count in sorted(counter.ops.items()))
    sqs = f" + SQS SendMessageBatch {sender.requests / calls:.2f}" if sender.requests else ""
    print(f"{label:<46} {counter.total / calls:5.2f} DynamoDB requests{sqs}  ({ops})", flush=True)


def rate(calls: int, threads: int, call: Callable[[int], Any]) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(call, range(calls)))
    return calls / (time.perf_counter() - started)


def main() -> None:
    with DynamoDBLocal() as ddb:
        client = ddb.client(
            "dynamodb",
            Config(max_pool_connections=THREADS + 8, retries={"mode": "standard", "max_attempts": 5}),
        )
        names = create_tables(client, prefix="bench-rsv-")
        settings = Settings(billing_table_name=names["BILLING_TABLE_NAME"])
        counter = RequestCounter(client)
        sender = CountingSender()
        offset = [timedelta(0)]

        def clock() -> datetime:
            return datetime.now(UTC) + offset[0]

        entitlements = entitlement_service(CATALOG, client=client, settings=settings, clock=clock, seed=1)
        service = ReservationService(
            settings,
            entitlements=entitlements,
            repository=ReservationRepository(settings, client),
            meter=QueueMeter(settings, CATALOG, sender=sender),
            clock=clock,
        )
        start = datetime.now(UTC) - timedelta(days=1)
        for tenant, plan in (("t", "big"), ("hot", "sharded")):
            entitlements.apply_plan(tenant, plan, period_start=start, period_end=add_months(start, 1), source_version=1)
            entitlements.consume(tenant, "tokens")  # warm: the layout is cached, as in a warm container
        estimate = Decimal(4000)
        ttl = timedelta(minutes=5)
        print(f"DynamoDB Local, {os.cpu_count()} cores shared; estimate {estimate}", flush=True)

        def reserve(tenant: str = "t") -> str:
            return service.reserve(tenant, "tokens", estimate, ttl=ttl)[0].reservation_id

        measure("reserve (one counter)", counter, sender, 200, reserve)
        measure("reserve (8 shards)", counter, sender, 200, lambda: reserve("hot"))
        for label, actual in (("below", Decimal(1200)), ("at", estimate), ("above", Decimal(4500))):
            ids = [reserve() for _ in range(200)]
            pending = iter(ids)
            measure(
                f"settle {label} the estimate (+ usage record)",
                counter,
                sender,
                200,
                lambda actual=actual, pending=pending: service.settle("t", next(pending), actual),
            )
        ids = [reserve() for _ in range(200)]
        for rid in ids:
            service.settle("t", rid, Decimal(900))
        pending = iter(ids)
        measure(
            "settle retried (replay)", counter, sender, 200, lambda: service.settle("t", next(pending), Decimal(900))
        )
        ids = [reserve() for _ in range(200)]
        pending = iter(ids)
        measure("cancel", counter, sender, 200, lambda: service.cancel("t", next(pending)))
        for _ in range(200):
            reserve()  # abandoned (the reserve-only runs above left 400 more)
        offset[0] += ttl + timedelta(seconds=1)
        counter.reset()
        report = service.sweep()
        print(
            f"{'sweep of ' + str(report.expired) + ' expired reservations':<46} "
            f"{counter.total / max(1, report.expired):5.2f} DynamoDB requests per expired reservation"
            f"  ({', '.join(f'{k} {v}' for k, v in sorted(counter.ops.items()))})",
            flush=True,
        )
        offset[0] = timedelta(0)

        consumes = rate(PAIRS, THREADS, lambda i: entitlements.consume("t", "tokens", Decimal(1)))
        pairs = rate(
            PAIRS,
            THREADS,
            lambda i: service.settle(
                "t", service.reserve("t", "tokens", estimate, ttl=ttl)[0].reservation_id, Decimal(900)
            ),
        )
        print(
            f"\n{THREADS} threads, one counter: consume {consumes:6.0f}/s, reserve+settle {pairs:6.0f} pairs/s,"
            f" ratio {pairs / consumes:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
