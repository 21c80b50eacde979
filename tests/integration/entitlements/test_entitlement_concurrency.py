"""Proof on Amazon's DynamoDB Local (moto is not atomic under threads): quotas never overspend under
contention, sharded or not, across a period rollover racing consumers and a renewal webhook, with
idempotency-key retries, and releases never take usage below zero."""

from __future__ import annotations

import asyncio
import random
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
from billing_platform.enforcer import EntitlementEnforcer, require_entitlement
from billing_platform.entitlements.models import EntitlementCheck, add_months
from billing_platform.entitlements.service import EntitlementService
from billing_platform.errors import QuotaExceededError
from billing_platform.settings import Settings
from tests.factories.catalogs import catalog_json, plan, quota
from tests.factories.services import entitlement_service, utc_now

pytestmark = [pytest.mark.ddblocal, pytest.mark.xdist_group("ddblocal")]

THREADS = 40
CATALOG = catalog_json(
    {
        "small": plan(quota("300"), name="Small"),
        "rollover": plan(quota("150"), name="Rollover"),
        "hot": plan(quota("301"), name="Hot", shards=4),
        "tiny_hot": plan(quota("8"), name="Tiny", shards=4),
        "small_hot": plan(quota("300"), name="Small, sharded", shards=4),
    }
)


class Clock:
    """Real time plus an offset the test moves (DynamoDB conditions compare against it)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def catalog() -> Catalog:
    return parse_catalog(CATALOG)


@pytest.fixture
def make_service(
    ddb_local_tables: dict[str, str], dynamodb_local: Any, catalog: Catalog
) -> Callable[..., EntitlementService]:
    client = boto3.client(
        "dynamodb",
        endpoint_url=dynamodb_local.endpoint_url,
        region_name="us-east-1",
        config=Config(max_pool_connections=THREADS + 8, retries={"mode": "standard", "max_attempts": 5}),
    )
    settings = Settings(billing_table_name=ddb_local_tables["BILLING_TABLE_NAME"])

    def make(clock: Callable[[], datetime] | None = None, seed: int = 7) -> EntitlementService:
        return entitlement_service(catalog, client=client, settings=settings, clock=clock or utc_now, seed=seed)

    return make


def period(now: datetime) -> dict[str, datetime]:
    return {"period_start": now - timedelta(days=2), "period_end": add_months(now - timedelta(days=2), 1)}


def drain(service: EntitlementService, tenant: str, quantities: list[Decimal]) -> list[EntitlementCheck]:
    """Consume the quantities in turn, stopping at the first denial of a quantity of 1."""
    answers = []
    for quantity in quantities:
        answer = service.consume(tenant, "executions", quantity)
        answers.append(answer)
        if not answer.allowed and quantity == 1:
            break
    return answers


def run_threads(work: Callable[[int], list[EntitlementCheck]], threads: int = THREADS) -> list[EntitlementCheck]:
    start = threading.Barrier(threads)

    def task(index: int) -> list[EntitlementCheck]:
        start.wait()
        return work(index)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return [answer for answers in pool.map(task, range(threads)) for answer in answers]


def granted(answers: list[EntitlementCheck]) -> Decimal:
    return sum((a.quantity for a in answers if a.allowed), Decimal(0))


def test_consume_never_exceeds_limit_under_contention(make_service: Callable[..., EntitlementService]) -> None:
    service = make_service()
    service.apply_plan("t-one", "small", **period(datetime.now(UTC)), source_version=1)
    answers = run_threads(lambda i: drain(service, "t-one", [Decimal(1)] * 400))

    assert granted(answers) == 300
    assert sum(1 for a in answers if a.allowed) == 300
    assert all(a.remaining is not None and a.remaining >= 0 for a in answers)
    # Each grant saw a distinct counter state: no two grants claimed the same unit.
    assert sorted(a.used for a in answers if a.allowed) == [Decimal(n) for n in range(1, 301)]
    assert all(a.reason is not None and a.reason.value == "quota_exhausted" for a in answers if not a.allowed)
    final = service.check("t-one", "executions")
    assert (final.used, final.remaining, final.limit) == (300, 0, 300)
    assert final.used + (final.remaining or 0) == final.limit


def test_mixed_quantities_are_exact_and_every_denial_is_true(make_service: Callable[..., EntitlementService]) -> None:
    service = make_service()
    service.apply_plan("t-mixed", "small", **period(datetime.now(UTC)), source_version=1)

    def work(index: int) -> list[EntitlementCheck]:
        rng = random.Random(index)
        return drain(service, "t-mixed", [Decimal(rng.choice([1, 2, 3])) for _ in range(60)] + [Decimal(1)] * 300)

    answers = run_threads(work)
    final = service.check("t-mixed", "executions")
    assert granted(answers) == final.used == 300
    assert final.remaining == 0
    # A denial reports the exact remaining it saw, and that was less than asked.
    assert all(a.remaining is not None and a.remaining < a.quantity for a in answers if not a.allowed)


def test_sharded_quota_never_overspends_and_denies_only_when_truly_short(
    make_service: Callable[..., EntitlementService],
) -> None:
    service = make_service()
    service.apply_plan("t-hot", "hot", **period(datetime.now(UTC)), source_version=1)

    def work(index: int) -> list[EntitlementCheck]:
        # Separate services (containers) each with their own random shard choice.
        own = make_service(seed=index)
        rng = random.Random(index)
        return drain(own, "t-hot", [Decimal(rng.choice([1, 2, 3])) for _ in range(6)] + [Decimal(1)] * 300)

    answers = run_threads(work, threads=32)
    final = service.check("t-hot", "executions")
    assert granted(answers) == final.used == 301
    assert (final.remaining, final.limit) == (0, 301)
    assert all(
        not a.approximate and a.remaining is not None and a.remaining < a.quantity for a in answers if not a.allowed
    )
    shards = service._repo.get_counters(  # the items themselves: none below zero
        [{"pk": {"S": f"QUOTA#t-hot#executions#{i}"}, "sk": {"S": "COUNTER"}} for i in range(4)]
    )
    assert len(shards) == 4
    assert all(s.remaining >= 0 and s.used + s.remaining == s.limit for s in shards)
    assert sum(s.limit for s in shards) == 301


def test_sharded_take_spreads_over_shards_when_no_single_shard_covers_it(
    make_service: Callable[..., EntitlementService],
) -> None:
    service = make_service()
    service.apply_plan("t-frag", "tiny_hot", **period(datetime.now(UTC)), source_version=1)
    now = datetime.now(UTC)
    for i in range(4):  # each shard of 2 left with 1
        key = {"pk": {"S": f"QUOTA#t-frag#executions#{i}"}, "sk": {"S": "COUNTER"}}
        assert service._repo.consume(key, Decimal(1), now, enforce=True)[0] is not None
    spread = service.consume("t-frag", "executions", Decimal(4))
    assert spread.allowed
    assert len(spread.shards_used) == 4
    denied = service.consume("t-frag", "executions", Decimal(1))
    assert (denied.allowed, denied.remaining, denied.used) == (False, 0, 8)
    # Releasing what the spread took puts each unit back on its own shard.
    service.release_taken("t-frag", "executions", spread.shards_used, period_end=spread.resets_at)
    assert service.check("t-frag", "executions").used == 4


def test_rollover_racing_consumers_and_renewal_never_grants_a_period_twice(
    make_service: Callable[..., EntitlementService],
) -> None:
    clock = Clock()
    service = make_service(clock)
    # A one-month period that began 20 days ago: live now whatever today's date (a month is >= 28 days).
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=20)
    end = add_months(start, 1)
    service.apply_plan("t-roll", "rollover", period_start=start, period_end=end, source_version=1)
    first = run_threads(lambda i: drain(service, "t-roll", [Decimal(1)] * 2), threads=32)
    assert granted(first) == 64

    clock.offset = end - datetime.now(UTC) + timedelta(minutes=5)  # the period is over
    next_end = add_months(end, 1)
    renewal = threading.Thread(
        target=lambda: make_service(clock).apply_plan(
            "t-roll", "rollover", period_start=end, period_end=next_end, source_version=2
        )
    )
    renewal.start()
    second = run_threads(lambda i: drain(make_service(clock, seed=i), "t-roll", [Decimal(1)] * 200), threads=32)
    renewal.join()

    by_period = Counter(a.resets_at for a in second if a.allowed)
    assert set(by_period) == {next_end}
    assert granted(second) == 150  # the new period granted once, not twice
    final = service.check("t-roll", "executions")
    assert (final.used, final.remaining, final.resets_at) == (150, 0, next_end)


def test_idempotency_key_retries_consume_once_under_concurrency(
    make_service: Callable[..., EntitlementService],
) -> None:
    service = make_service()
    service.apply_plan("t-keys", "small", **period(datetime.now(UTC)), source_version=1)
    keys = [f"job-{n}" for n in range(20)]

    def work(index: int) -> list[EntitlementCheck]:
        # Every key is sent by four threads at once (a client retrying on timeouts).
        return [
            service.consume("t-keys", "executions", Decimal(2), idempotency_key=keys[(index + r * 10) % 20])
            for r in range(2)
        ]

    answers = run_threads(work, threads=40)
    assert len(answers) == 80
    assert all(a.allowed and a.quantity == 2 for a in answers)
    assert sum(1 for a in answers if not a.replayed) == 20
    assert service.check("t-keys", "executions").used == 40
    # A later retry answers exactly what the first attempt answered.
    firsts = {a.idempotency_key: a for a in answers if not a.replayed}
    again = service.consume("t-keys", "executions", Decimal(2), idempotency_key="job-3")
    assert again.replayed
    assert (again.used, again.remaining) == (firsts["job-3"].used, firsts["job-3"].remaining)
    # Keyed releases under contention give back once per key.
    releases = run_threads(
        lambda i: [service.release("t-keys", "executions", idempotency_key=keys[i % 20])], threads=40
    )
    assert sum((r.quantity for r in releases), Decimal(0)) == 40
    assert service.check("t-keys", "executions").used == 0


def test_concurrent_releases_never_take_usage_below_zero(make_service: Callable[..., EntitlementService]) -> None:
    service = make_service()
    service.apply_plan("t-rel", "small", **period(datetime.now(UTC)), source_version=1)
    taken = run_threads(lambda i: drain(service, "t-rel", [Decimal(5)] * 1), threads=32)
    assert granted(taken) == 160
    releases = run_threads(lambda i: [service.release("t-rel", "executions", Decimal(3)) for _ in range(3)], threads=32)
    assert sum((r.quantity for r in releases), Decimal(0)) == 160  # 288 asked, only 160 was used
    final = service.check("t-rel", "executions")
    assert (final.used, final.remaining) == (0, 300)


def test_sharded_idempotent_consumes_under_contention_consume_once(
    make_service: Callable[..., EntitlementService],
) -> None:
    service = make_service()
    service.apply_plan("t-hotkeys", "hot", **period(datetime.now(UTC)), source_version=1)
    keys = [f"job-{n}" for n in range(16)]
    answers = run_threads(
        lambda i: [make_service(seed=i).consume("t-hotkeys", "executions", Decimal(10), idempotency_key=keys[i % 16])],
        threads=32,
    )
    assert all(a.allowed for a in answers)
    assert sum(1 for a in answers if not a.replayed) == 16
    assert service.check("t-hotkeys", "executions").used == 160
    releases = run_threads(
        lambda i: [service.release("t-hotkeys", "executions", idempotency_key=keys[i % 16])], threads=32
    )
    assert sum((r.quantity for r in releases), Decimal(0)) == 160
    assert service.check("t-hotkeys", "executions").used == 0


def test_layout_switch_racing_consumers_carries_usage_and_never_overspends(
    make_service: Callable[..., EntitlementService],
) -> None:
    service = make_service()
    terms = period(datetime.now(UTC))
    service.apply_plan("t-switch", "small", **terms, source_version=1)
    started = threading.Event()

    def work(index: int) -> list[EntitlementCheck]:
        own = make_service(seed=index)  # each container caches the old layout until told otherwise
        answers = drain(own, "t-switch", [Decimal(1)] * 5)
        started.set()
        return answers + drain(own, "t-switch", [Decimal(1)] * 400)

    errors: list[BaseException] = []

    def apply_while_busy() -> None:
        started.wait()
        try:
            make_service().apply_plan("t-switch", "small_hot", **terms, source_version=2)
        except BaseException as exc:  # surfaced below: a starved switch must fail the test
            errors.append(exc)

    switch = threading.Thread(target=apply_while_busy)
    switch.start()
    answers = run_threads(work, threads=32)
    switch.join()
    assert errors == []
    final = service.check("t-switch", "executions")
    assert granted(answers) == final.used == 300
    assert (final.remaining, final.limit) == (0, 300)
    shards = service._repo.get_counters(
        [{"pk": {"S": f"QUOTA#t-switch#executions#{i}"}, "sk": {"S": "COUNTER"}} for i in range(4)]
    )
    assert len(shards) == 4
    assert sum(s.used for s in shards) == 300


def test_async_services_consume_concurrently_with_the_same_guarantees(
    make_service: Callable[..., EntitlementService],
) -> None:
    enforcer = EntitlementEnforcer(make_service())
    enforcer.service.apply_plan("t-async", "small", **period(datetime.now(UTC)), source_version=1)

    @require_entitlement("executions", Decimal(7), enforcer=enforcer)
    async def handle(event: dict[str, Any]) -> str:
        await asyncio.sleep(0)
        if event.get("fail"):
            raise RuntimeError("downstream failed")
        return "ok"

    async def consume_all() -> list[Any]:
        calls = (enforcer.check_and_record("t-async", "executions", 10) for _ in range(40))
        return list(await asyncio.gather(*calls))

    async def guarded_calls() -> list[Any]:
        calls = (handle({"tenant_id": "t-async", "fail": n % 2 == 1}) for n in range(10))
        return list(await asyncio.gather(*calls, return_exceptions=True))

    checks = asyncio.run(consume_all())
    assert sum(1 for c in checks if c.allowed) == 30  # 300 / 10: exactly, never more
    results = asyncio.run(guarded_calls())
    assert all(isinstance(r, QuotaExceededError) for r in results)  # the quota is gone: nothing ran
    enforcer.service.release("t-async", "executions", Decimal(35))
    results = asyncio.run(guarded_calls())
    succeeded = results.count("ok")
    assert 1 <= succeeded <= 5
    assert all(r == "ok" or isinstance(r, RuntimeError | QuotaExceededError) for r in results)
    # Failed calls gave their 7 back; only the calls that succeeded keep theirs.
    assert enforcer.sync.check("t-async", "executions").used == 300 - 35 + 7 * succeeded
