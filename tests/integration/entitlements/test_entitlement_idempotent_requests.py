"""Idempotent consumes on Amazon's DynamoDB Local: how many requests they cost (counted on the wire) and
that they stay exact when retried concurrently from cold and warm containers, and when a container
crashes between its read and its transaction or after its transaction committed."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.config import Config

from billing_platform.catalog.models import Catalog, parse_catalog
from billing_platform.entitlements.models import EntitlementCheck, add_months
from billing_platform.settings import Settings
from tests.factories.catalogs import catalog_json, plan, quota
from tests.factories.services import entitlement_service

pytestmark = [pytest.mark.ddblocal, pytest.mark.xdist_group("ddblocal")]

CATALOG = catalog_json({"small": plan(quota("300"), name="Small"), "hot": plan(quota("400"), name="Hot", shards=4)})
TWO = Decimal(2)


class Container:
    """One Lambda container: its own client (counted on the wire, faults injected there) and service."""

    def __init__(self, endpoint_url: str, settings: Settings, catalog: Catalog, seed: int) -> None:
        self.client = boto3.client(
            "dynamodb",
            endpoint_url=endpoint_url,
            region_name="us-east-1",
            config=Config(max_pool_connections=16, retries={"mode": "standard", "max_attempts": 5}),
        )
        self.service = entitlement_service(catalog, client=self.client, settings=settings, seed=seed)
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.client.meta.events.register("before-send.dynamodb.*", self._sent)

    def _sent(self, request: Any, **_: Any) -> None:
        with self._lock:
            self.requests[request.headers["X-Amz-Target"].decode().split(".")[-1]] += 1

    def count(self, call: Callable[[], EntitlementCheck]) -> tuple[EntitlementCheck, int]:
        self.requests.clear()
        answer = call()
        return answer, sum(self.requests.values())

    def crash_once(self, event: str) -> None:
        """The next `event` (e.g. after-call.dynamodb.TransactWriteItems) raises: the process died there."""
        fired = threading.Event()

        def crash(**_: Any) -> None:
            if not fired.is_set():
                fired.set()
                raise SystemError(f"container crashed at {event}")

        self.client.meta.events.register(event, crash)


@pytest.fixture
def containers(ddb_local_tables: dict[str, str], dynamodb_local: Any) -> Callable[[int], Container]:
    settings = Settings(billing_table_name=ddb_local_tables["BILLING_TABLE_NAME"])
    catalog = parse_catalog(CATALOG)
    return lambda seed: Container(dynamodb_local.endpoint_url, settings, catalog, seed)


def start_plan(container: Container, tenant: str, plan: str = "small") -> None:
    start = datetime.now(UTC) - timedelta(days=2)
    container.service.apply_plan(tenant, plan, period_start=start, period_end=add_months(start, 1), source_version=1)


def used(container: Container, tenant: str) -> Decimal:
    return container.service.check(tenant, "executions").used


def test_idempotent_consume_costs_two_requests_cold_one_warm_and_its_retry_one(
    containers: Callable[[int], Container],
) -> None:
    warm = containers(1)
    start_plan(warm, "t-req")
    warm.service.consume("t-req", "executions")  # the hot path: this container has now seen the counter

    answer, requests = warm.count(lambda: warm.service.consume("t-req", "executions", TWO, idempotency_key="c"))
    assert (answer.allowed, answer.replayed, answer.used, answer.remaining) == (True, False, 3, 297)
    assert requests == 1  # the transaction alone: this container had seen the counter

    cold = containers(2)
    answer, requests = cold.count(lambda: cold.service.consume("t-req", "executions", TWO, idempotency_key="b"))
    assert (answer.allowed, answer.replayed, answer.used, answer.remaining) == (True, False, 5, 295)
    assert requests == 2  # BatchGetItem (counter + record) and the transaction

    retried, requests = warm.count(lambda: warm.service.consume("t-req", "executions", TWO, idempotency_key="b"))
    assert (retried.replayed, retried.used, retried.remaining) == (True, 5, 295)
    assert requests == 1  # refused transaction: the record came back with the refusal
    other = containers(3)
    retried, requests = other.count(lambda: other.service.consume("t-req", "executions", TWO, idempotency_key="c"))
    assert (retried.replayed, retried.used, retried.remaining) == (True, 3, 297)
    assert requests == 1  # the record came back with the first read
    assert used(warm, "t-req") == 5

    hot, requests = warm.count(lambda: warm.service.consume("t-req", "executions"))
    assert hot.allowed
    assert requests == 1


def test_warm_container_whose_counter_moved_still_answers_exactly(containers: Callable[[int], Container]) -> None:
    warm, other = containers(1), containers(2)
    start_plan(warm, "t-moved")
    warm.service.consume("t-moved", "executions")
    other.service.consume("t-moved", "executions", Decimal(10))  # warm's view is now stale
    answer, requests = warm.count(lambda: warm.service.consume("t-moved", "executions", TWO, idempotency_key="k"))
    assert (answer.used, answer.remaining) == (13, 287)
    assert requests == 2  # refused (the counter moved, its state came back) and committed with the fresh state
    replay = other.service.consume("t-moved", "executions", TWO, idempotency_key="k")
    assert (replay.replayed, replay.used, replay.remaining) == (True, 13, 287)
    assert used(other, "t-moved") == 13


@pytest.mark.parametrize("plan", ["small", "hot"])
def test_keys_retried_concurrently_from_cold_and_warm_containers_consume_once(
    containers: Callable[[int], Container], plan: str
) -> None:
    tenant = f"t-retry-{plan}"
    admin = containers(0)
    start_plan(admin, tenant, plan)
    keys = [f"job-{n}" for n in range(20)]
    warm = [containers(100 + n) for n in range(4)]
    for container in warm:
        container.service.consume(tenant, "executions", Decimal(1))  # seen the counter (a shard of it)
    barrier = threading.Barrier(40)

    def attempt(index: int) -> list[EntitlementCheck]:
        # 20 keys x 4 attempts: a warm container or a brand-new one, all at once.
        container = warm[index % 4] if index % 2 else containers(index)
        barrier.wait()
        return [
            container.service.consume(tenant, "executions", TWO, idempotency_key=keys[(index + r * 10) % 20])
            for r in range(2)
        ]

    with ThreadPoolExecutor(max_workers=40) as pool:
        answers = [a for batch in pool.map(attempt, range(40)) for a in batch]
    assert len(answers) == 80
    assert all(a.allowed and a.quantity == TWO for a in answers)
    firsts = {a.idempotency_key: a for a in answers if not a.replayed}
    assert sorted(firsts) == sorted(keys)  # one first answer per key, every other attempt a replay
    for answer in answers:
        first = firsts[answer.idempotency_key]
        assert (answer.used, answer.remaining, answer.shards_used) == (first.used, first.remaining, first.shards_used)
    assert used(admin, tenant) == 4 + 40


@pytest.mark.parametrize(
    "crash_at",
    ["before-call.dynamodb.TransactWriteItems", "after-call.dynamodb.TransactWriteItems"],
    ids=["after-read-before-transaction", "after-transaction-before-answer"],
)
def test_a_container_crashing_between_steps_leaves_the_key_consumed_once(
    containers: Callable[[int], Container], crash_at: str
) -> None:
    tenant = "t-crash"
    admin = containers(0)
    start_plan(admin, tenant)
    crashing = containers(1)
    crashing.crash_once(crash_at)
    with pytest.raises(SystemError):
        crashing.service.consume(tenant, "executions", TWO, idempotency_key="job")
    committed = crash_at.startswith("after-call")
    assert used(admin, tenant) == (TWO if committed else 0)

    # The client retries at once, from four containers (one of them warm) racing each other.
    racers = [containers(2 + n) for n in range(3)] + [admin]
    barrier = threading.Barrier(len(racers))

    def retry(container: Container) -> EntitlementCheck:
        barrier.wait()
        return container.service.consume(tenant, "executions", TWO, idempotency_key="job")

    with ThreadPoolExecutor(max_workers=len(racers)) as pool:
        answers = list(pool.map(retry, racers))
    assert used(admin, tenant) == TWO
    assert all(a.allowed and (a.used, a.remaining) == (2, 298) for a in answers)
    assert sum(1 for a in answers if not a.replayed) == (0 if committed else 1)
    # The key released once gives back exactly what it took.
    released = admin.service.release(tenant, "executions", idempotency_key="job")
    assert released.quantity == TWO
    assert used(admin, tenant) == 0
