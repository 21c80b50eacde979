"""Grants drawn atomically with the quota, proven on DynamoDB Local (moto is not atomic under threads):
>= 32 threads consuming across the quota/grant boundary, across a grant's expiry, over sharded counters,
and over a period rollover. Invariants checked with numbers: granted total = quota + live grants exactly;
the quota pays first, then grants in draw order (priority, earliest expiry); an expired grant keeps its
balance and pays nothing after its expiry instant; a denial only when quota + live grants are short."""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.config import Config

from billing_platform.audit.log import AuditEntry
from billing_platform.catalog.models import Catalog, parse_catalog
from billing_platform.entitlements.models import EntitlementCheck, add_months
from billing_platform.entitlements.service import EntitlementService
from billing_platform.grants.models import Grant, GrantSource, GrantState
from billing_platform.grants.repository import GrantRepository
from billing_platform.settings import Settings
from tests.factories.catalogs import catalog_json, plan, quota
from tests.factories.services import entitlement_service, utc_now
from tests.integration.entitlements.test_entitlement_concurrency import Clock
from tests.integration.entitlements.test_entitlement_concurrency import run_threads as run_together

pytestmark = [pytest.mark.ddblocal, pytest.mark.xdist_group("ddblocal")]

THREADS = 32
CATALOG = catalog_json(
    {
        "small": plan(quota("300"), name="Small"),
        "tiny": plan(quota("50"), name="Tiny"),
        "small_hot": plan(quota("300"), name="Small, sharded", shards=4),
    }
)


@pytest.fixture
def catalog() -> Catalog:
    return parse_catalog(CATALOG)


@pytest.fixture
def client(ddb_local_tables: dict[str, str], dynamodb_local: Any) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=dynamodb_local.endpoint_url,
        region_name="us-east-1",
        config=Config(max_pool_connections=THREADS + 8, retries={"mode": "standard", "max_attempts": 5}),
    )


@pytest.fixture
def settings(ddb_local_tables: dict[str, str]) -> Settings:
    return Settings(billing_table_name=ddb_local_tables["BILLING_TABLE_NAME"])


@pytest.fixture
def make_service(client: Any, settings: Settings, catalog: Catalog) -> Callable[..., EntitlementService]:
    def make(clock: Callable[[], datetime] | None = None, seed: int = 7) -> EntitlementService:
        return entitlement_service(
            catalog,
            client=client,
            settings=settings,
            clock=clock or utc_now,
            seed=seed,
            grants=GrantRepository(settings, client),
        )

    return make


_ids = itertools.count()


def add_grant(
    repo: GrantRepository,
    tenant: str,
    amount: int,
    *,
    priority: int = 50,
    valid_until: datetime | None = None,
    created_at: datetime | None = None,
) -> str:
    grant_id = f"grt_{next(_ids):016x}"
    now = created_at or datetime.now(UTC) - timedelta(minutes=5)
    grant = Grant(
        tenant_id=tenant,
        resource_type="executions",
        grant_id=grant_id,
        amount=Decimal(amount),
        remaining=Decimal(amount),
        used=Decimal(0),
        priority=priority,
        valid_until=valid_until.replace(microsecond=0) if valid_until else None,
        state=GrantState.ACTIVE,
        source=GrantSource.OPERATOR,
        source_id=grant_id,
        created_at=now,
        created_by="operator:test",
    )
    audit = AuditEntry(tenant_id=tenant, actor="operator:test", action="grant.create", target=grant_id)
    assert repo.create([grant], audit)
    return grant_id


def period(now: datetime) -> dict[str, datetime]:
    return {"period_start": now - timedelta(days=2), "period_end": add_months(now - timedelta(days=2), 1)}


def run_threads(work: Callable[[int], list[EntitlementCheck]], threads: int = THREADS) -> list[EntitlementCheck]:
    return run_together(work, threads)


def consume_n(service: EntitlementService, tenant: str, n: int) -> list[EntitlementCheck]:
    return [service.consume(tenant, "executions", Decimal(1)) for _ in range(n)]


def granted(answers: list[EntitlementCheck]) -> Decimal:
    return sum((a.quantity for a in answers if a.allowed), Decimal(0))


def grants_by_id(repo: GrantRepository, tenant: str) -> dict[str, Grant]:
    return {g.grant_id: g for g in repo.list(tenant)}


def drawn_per_grant(answers: list[EntitlementCheck]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for answer in answers:
        for grant_id, quantity in answer.grants_used:
            totals[grant_id] = totals.get(grant_id, Decimal(0)) + quantity
    return totals


def test_the_quota_pays_first_then_grants_in_order_under_contention(
    make_service: Callable[..., EntitlementService], client: Any, settings: Settings
) -> None:
    """400 takes of 1 against 300 quota + grants: exactly the quota, then the priority-5 grant, then the
    earlier-expiring of two priority-10 grants; the later one and an expired one untouched."""
    now = datetime.now(UTC)
    service = make_service()
    grants = GrantRepository(settings, client)
    service.apply_plan("t-order", "small", **period(now), source_version=1)
    first = add_grant(grants, "t-order", 60, priority=5)
    second = add_grant(grants, "t-order", 100, priority=10, valid_until=now + timedelta(days=1))
    third = add_grant(grants, "t-order", 100, priority=10, valid_until=now + timedelta(days=2))
    expired = add_grant(grants, "t-order", 500, priority=0, valid_until=now - timedelta(seconds=1))

    answers = run_threads(lambda i: consume_n(make_service(seed=i), "t-order", 400 // THREADS + 1))

    assert len(answers) == THREADS * (400 // THREADS + 1) == 416
    assert granted(answers) == 416  # capacity 300 + 60 + 100 + 100 = 560 > 416: nothing denied
    counter = service.check("t-order", "executions")
    after = grants_by_id(grants, "t-order")
    assert (counter.used, counter.remaining) == (300, 0)
    assert (after[first].used, after[first].remaining) == (60, 0)
    assert (after[second].used, after[second].remaining) == (56, 44)
    assert (after[third].used, after[expired].used) == (0, 0)
    assert after[expired].remaining == 500  # the expired balance, frozen
    assert drawn_per_grant(answers) == {first: Decimal(60), second: Decimal(56)}
    # Quota + grants account for every granted unit, nothing more.
    assert counter.used + sum(g.used for g in after.values()) == granted(answers)


def test_a_denial_only_when_quota_and_live_grants_together_are_short(
    make_service: Callable[..., EntitlementService], client: Any, settings: Settings
) -> None:
    now = datetime.now(UTC)
    service = make_service()
    grants = GrantRepository(settings, client)
    service.apply_plan("t-short", "small", **period(now), source_version=1)
    ids = [add_grant(grants, "t-short", 70, priority=p, valid_until=now + timedelta(days=p)) for p in (1, 2, 3)]

    def work(index: int) -> list[EntitlementCheck]:
        own, rng = make_service(seed=index), random.Random(index)
        answers = []
        for quantity in [Decimal(rng.choice([1, 2, 3])) for _ in range(12)] + [Decimal(1)] * 40:
            answers.append(own.consume("t-short", "executions", quantity))
            if not answers[-1].allowed and quantity == 1:
                break
        return answers

    answers = run_threads(work, threads=40)

    after = grants_by_id(grants, "t-short")
    counter = service.check("t-short", "executions")
    assert granted(answers) == 300 + 3 * 70 == 510  # exactly quota + live grants
    assert counter.used == 300
    assert [after[i].remaining for i in ids] == [0, 0, 0]
    for denial in (a for a in answers if not a.allowed):
        # What the denial saw left (quota + live grants) really was short of the quantity asked.
        assert denial.grant_remaining is not None
        assert (denial.remaining or 0) + denial.grant_remaining < denial.quantity


def test_an_expiring_grant_pays_nothing_from_its_expiry_instant(
    make_service: Callable[..., EntitlementService], client: Any, settings: Settings
) -> None:
    """Consumers run past a grant's expiry (the clock jumps mid-run): the expired grant keeps its balance,
    later takes are paid by the next grant, then denied; the total is quota + what was live, exactly."""
    clock = Clock()
    now = clock()
    service = make_service(clock)
    grants = GrantRepository(settings, client)
    service.apply_plan("t-exp", "tiny", **period(now), source_version=1)
    expiry = (now + timedelta(hours=1)).replace(microsecond=0)
    short = add_grant(grants, "t-exp", 10_000, priority=1, valid_until=expiry)
    long = add_grant(grants, "t-exp", 120, priority=50)
    attempts = itertools.count()
    jump_at = 400
    jumped = threading.Event()
    lock = threading.Lock()

    def work(index: int) -> list[EntitlementCheck]:
        own = make_service(clock, seed=index)
        answers = []
        for _ in range(30):
            with lock:
                if next(attempts) == jump_at:
                    clock.offset = expiry - now  # from here on, now >= expiry
                    jumped.set()
            answers.append(own.consume("t-exp", "executions", Decimal(1)))
        return answers

    answers = run_threads(work)

    assert jumped.is_set()
    after = grants_by_id(grants, "t-exp")
    counter = service.check("t-exp", "executions")
    assert counter.used == 50
    drawn_short = after[short].used
    assert 0 < drawn_short < 400  # paid only before the jump (at most the takes that started before it)
    assert after[short].remaining == 10_000 - drawn_short  # the expired balance
    assert after[short].status(clock()) == "expired"
    assert after[long].used == 120  # everything after the expiry came from here, then denials
    assert granted(answers) == 50 + drawn_short + 120
    assert sum(1 for a in answers if not a.allowed) == len(answers) - granted(answers)
    # Nothing more can be drawn from the expired grant, even when asked again now.
    again = service.consume("t-exp", "executions", Decimal(1))
    assert (again.allowed, again.grant_remaining) == (False, Decimal(0))
    assert grants_by_id(grants, "t-exp")[short].used == drawn_short


def test_sharded_counters_spend_every_shard_before_grants(
    make_service: Callable[..., EntitlementService], client: Any, settings: Settings
) -> None:
    now = datetime.now(UTC)
    service = make_service()
    grants = GrantRepository(settings, client)
    service.apply_plan("t-shards", "small_hot", **period(now), source_version=1)
    grant_id = add_grant(grants, "t-shards", 90)

    answers = run_threads(lambda i: consume_n(make_service(seed=i), "t-shards", 14), threads=THREADS)

    assert len(answers) == 448
    assert granted(answers) == 390  # 300 over 4 shards + 90 granted
    shards = service._repo.get_counters(
        [{"pk": {"S": f"QUOTA#t-shards#executions#{i}"}, "sk": {"S": "COUNTER"}} for i in range(4)]
    )
    assert [s.remaining for s in shards] == [0, 0, 0, 0]
    assert sum(s.used for s in shards) == 300
    assert grants_by_id(grants, "t-shards")[grant_id].used == 90


def test_grants_carry_over_a_period_rollover_and_the_new_quota_pays_first(
    make_service: Callable[..., EntitlementService], client: Any, settings: Settings
) -> None:
    clock = Clock()
    now = clock()
    service = make_service(clock)
    grants = GrantRepository(settings, client)
    service.apply_plan("t-roll", "tiny", **period(now), source_version=1)
    grant_id = add_grant(grants, "t-roll", 1_000)

    first = run_threads(lambda i: consume_n(make_service(clock, seed=i), "t-roll", 5))  # 160 = 50 + 110
    assert granted(first) == 160
    assert grants_by_id(grants, "t-roll")[grant_id].remaining == 890

    clock.offset = timedelta(days=40)  # past the period end: the quota rolls over lazily
    second = run_threads(lambda i: consume_n(make_service(clock, seed=i), "t-roll", 3))  # 96 = 50 + 46

    assert granted(second) == 96
    assert grants_by_id(grants, "t-roll")[grant_id].remaining == 844
    counter = service.check("t-roll", "executions")
    assert (counter.used, counter.remaining) == (50, 0)


def test_keyed_consumes_past_the_quota_draw_once_whatever_the_retries(
    make_service: Callable[..., EntitlementService], client: Any, settings: Settings
) -> None:
    """Every key sent by 4 threads at once (a client retrying into several containers): each key's take
    happens once, from the quota and then the grant, and every retry answers the first answer."""
    now = datetime.now(UTC)
    service = make_service()
    grants = GrantRepository(settings, client)
    service.apply_plan("t-keys", "tiny", **period(now), source_version=1)
    grant_id = add_grant(grants, "t-keys", 100)
    keys = [f"job-{n}" for n in range(60)]  # 60 takes of 2 = 120: quota 50 + 70 of the grant

    def work(index: int) -> list[EntitlementCheck]:
        own = make_service(seed=index)
        order = keys[index % 4 :: 4] * 4  # each key by 4 threads, twice each
        random.Random(index).shuffle(order)
        return [own.consume("t-keys", "executions", Decimal(2), idempotency_key=key) for key in order]

    answers = run_threads(work)

    first_answers: dict[str | None, EntitlementCheck] = {}
    for answer in answers:
        assert answer.allowed
        first = first_answers.setdefault(answer.idempotency_key, answer)
        assert (answer.used, answer.grants_used) == (first.used, first.grants_used)
    assert len(first_answers) == 60
    counter = service.check("t-keys", "executions")
    assert counter.used == 50
    assert grants_by_id(grants, "t-keys")[grant_id].used == 70
    assert sum(sum(q for _g, q in a.grants_used) for a in first_answers.values()) == 70


def test_the_slow_path_draws_grants_only_for_callers_that_ask(
    make_service: Callable[..., EntitlementService], client: Any, settings: Settings
) -> None:
    """A take with a companion write (a reservation) must not be committed by the slow path on its own:
    without `draw_grants` an exhausted hard quota is a plain denial and the grant is untouched."""
    from billing_platform.entitlements.dal.items import counter_to_item
    from billing_platform.entitlements.models import ConsumeRequest
    from billing_platform.entitlements.slow_path import slow_path

    now = datetime.now(UTC)
    service = make_service()
    grants = GrantRepository(settings, client)
    service.apply_plan("t-guard", "tiny", **period(now), source_version=1)
    grant_id = add_grant(grants, "t-guard", 10)
    assert service.consume("t-guard", "executions", Decimal(50)).allowed
    counter = service._repo.get_counter("t-guard", "executions")
    assert counter is not None
    item = counter_to_item(counter, now)

    request = ConsumeRequest("t-guard", "executions", Decimal(1))
    plain = slow_path(service.context, request, item, shards=1, now=now)
    assert isinstance(plain, EntitlementCheck)
    assert (plain.allowed, plain.grants_used) == (False, ())
    assert grants_by_id(grants, "t-guard")[grant_id].used == 0

    drawn = slow_path(service.context, request, item, shards=1, now=now, draw_grants=True)
    assert isinstance(drawn, EntitlementCheck)
    assert (drawn.allowed, drawn.grants_used) == (True, ((grant_id, Decimal(1)),))
    assert grants_by_id(grants, "t-guard")[grant_id].used == 1
