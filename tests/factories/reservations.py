"""Reservation services on DynamoDB Local with a test clock, whose settles meter through the real usage
consumer into the usage table (the SQS hop replaced by direct delivery of the same message bodies)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from billing_platform.catalog.models import Catalog
from billing_platform.entitlements.service import EntitlementService
from billing_platform.reservations import ReservationService
from billing_platform.reservations.meter import QueueMeter
from billing_platform.reservations.repository import ReservationRepository
from billing_platform.settings import Settings
from billing_platform.usage.consumer import UsageConsumerService
from billing_platform.usage.queue import SendOutcome
from billing_platform.usage.repository import UsageRecordRepository
from tests.factories.services import entitlement_service

# The plan catalog every service of the harness reads (through the settings).
CATALOG_PATH = Path(__file__).with_name("reservations_plans.json")


class Clock:
    """Real time plus an offset the test moves (DynamoDB conditions compare against it)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self.offset += delta


class ConsumerSender:
    """`UsageSender` that hands each message body to the real usage consumer (raw records in the usage
    table, keyed by tenant and record id), so what the tests sum is what the pipeline would count."""

    def __init__(self, consumer: UsageConsumerService) -> None:
        self._consumer = consumer
        self.messages = 0
        self._lock = threading.Lock()

    def send_batch(self, bodies: Sequence[str]) -> SendOutcome:
        for body in bodies:
            self._consumer.process_message(body)
        with self._lock:
            self.messages += len(bodies)
        return SendOutcome()


class Harness:
    """Builds services (one per simulated container) over the same tables, clock and usage pipeline."""

    def __init__(self, names: dict[str, str], endpoint_url: str, *, threads: int = 48) -> None:
        self.client = boto3.client(
            "dynamodb",
            endpoint_url=endpoint_url,
            region_name="us-east-1",
            config=Config(max_pool_connections=threads + 8, retries={"mode": "standard", "max_attempts": 8}),
        )
        self.settings = Settings(
            billing_table_name=names["BILLING_TABLE_NAME"],
            usage_table_name=names["USAGE_TABLE_NAME"],
            plan_catalog_path=str(CATALOG_PATH),
        )
        self.catalog: Catalog = self.settings.catalog
        self.clock = Clock()
        self.consumer = UsageConsumerService(
            self.settings,
            repository=UsageRecordRepository(self.settings, client=self.client),
            clock=self.clock,
        )
        self.sender = ConsumerSender(self.consumer)

    def entitlements(self, seed: int = 7) -> EntitlementService:
        return entitlement_service(
            self.catalog, client=self.client, settings=self.settings, clock=self.clock, seed=seed
        )

    def service(
        self,
        seed: int = 7,
        *,
        repository: ReservationRepository | None = None,
        meter: Any = None,
    ) -> ReservationService:
        entitlements = self.entitlements(seed)
        return ReservationService(
            self.settings,
            entitlements=entitlements,
            repository=repository or ReservationRepository(self.settings, self.client),
            meter=meter or QueueMeter(self.settings, self.catalog, sender=self.sender),
            clock=self.clock,
        )

    def metered(self, tenant_id: str) -> dict[str, Decimal]:
        """record id -> quantity of the tenant's raw usage records (what the aggregator would count)."""
        found: dict[str, Decimal] = {}
        paginator = self.client.get_paginator("scan")
        for page in paginator.paginate(TableName=self.settings.usage_table_name, ConsistentRead=True):
            for item in page["Items"]:
                if item["tenant_id"]["S"] == tenant_id:
                    found[item["record_id"]["S"]] = Decimal(item["quantity"]["N"])
        return found

    def apply(self, tenant_id: str, plan: str, *, left: timedelta = timedelta(days=20)) -> None:
        """The tenant on `plan`, in a monthly period that ends `left` from now."""
        now = self.clock().replace(microsecond=0)
        self.entitlements().apply_plan(
            tenant_id,
            plan,
            period_start=now + left - timedelta(days=30),
            period_end=now + left,
            source_version=1,
        )


def used(harness: Harness, tenant_id: str) -> Decimal:
    return harness.entitlements().check(tenant_id, "tokens").used


Work = Callable[[int], Any]


def run_beside_sweeper(harness: Harness, worker: Callable[[int], Any], threads: int, start: threading.Barrier) -> None:
    """`worker(0 .. threads-1)` on a pool while one more thread (a party of `start`, as the workers are) sweeps
    every 0.2 s, as the scheduled sweeper would, until every worker has returned."""
    done = threading.Event()

    def sweeper() -> None:
        service = harness.service(seed=999)
        start.wait()
        while not done.is_set():
            service.sweep()
            done.wait(0.2)

    sweeping = threading.Thread(target=sweeper)
    sweeping.start()
    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(worker, range(threads)))
    finally:
        done.set()
        sweeping.join()


@dataclass
class Ledger:
    """What the concurrency proofs' workers did (for the report) and anything unexpected they met."""

    reserved: int = 0
    denied: int = 0
    refused_409: int = 0
    crashes: int = 0  # injected crashes (test_reservation_concurrency)
    rate_limited: int = 0  # 429s (contention past the quota), retried as a client would
    fates: dict[str, int] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)
    abandoned: set[str] = field(default_factory=set)
    errors: list[BaseException] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)
