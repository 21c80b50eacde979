"""The entitlement use cases (consume, the slow path, reconcile, release, the keyed flow) on in-memory
repositories: the rules, fast and without a database. That the conditions hold under concurrency is proven
on DynamoDB Local (tests/integration, marked ddblocal), not here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing_platform.entitlements.models import (
    ConsumeRequest,
    CounterState,
    DenyReason,
    add_months,
)
from billing_platform.entitlements.service import EntitlementService
from billing_platform.errors import UnprocessableError
from tests.factories.catalogs import catalog, plan, quota
from tests.factories.fake_repositories import FakeEntitlementRepository
from tests.factories.services import fake_entitlement_service

START = datetime(2026, 3, 1, tzinfo=UTC)
CATALOG = catalog(
    {
        "free": quota("10"),
        "pro": quota("100"),
        "soft": quota("5", "soft"),
        "hot": plan(quota("8"), shards=4),
    }
)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(START + timedelta(days=3))


def subscribed(clock: Clock, plan_id: str = "pro") -> tuple[EntitlementService, FakeEntitlementRepository]:
    service, repository, _grants = fake_entitlement_service(CATALOG, clock=clock)
    service.apply_plan("t1", plan_id, period_start=START, period_end=add_months(START, 1), source_version=1)
    return service, repository


def test_a_consume_on_a_provisioned_counter_is_one_update(clock: Clock) -> None:
    service, repository = subscribed(clock)
    service.consume("t1", "executions", Decimal(1))
    repository.requests.clear()

    answer = service.consume("t1", "executions", Decimal(3))

    assert (answer.allowed, answer.used, answer.remaining, answer.limit) == (True, 4, 96, 100)
    assert repository.requests == ["UpdateItem"]


def test_the_first_consume_provisions_the_quota_from_the_plan(clock: Clock) -> None:
    service, repository, _grants = fake_entitlement_service(CATALOG, clock=clock)
    repository.known_tenants.add("t-new")  # a tenant with no subscription: the catalog's default plan

    answer = service.consume("t-new", "executions", Decimal(2))

    assert (answer.allowed, answer.used, answer.limit) == (True, 2, 10)  # the default plan's 10
    assert repository.get_counter("t-new", "executions") is not None


def test_a_hard_quota_never_grants_past_its_limit_and_denies_with_exact_numbers(clock: Clock) -> None:
    service, repository = subscribed(clock, "free")
    answers = [service.consume("t1", "executions", Decimal(3)) for _ in range(5)]

    assert [a.allowed for a in answers] == [True, True, True, False, False]
    denial = answers[-1]
    assert (denial.reason, denial.used, denial.remaining) == (DenyReason.EXHAUSTED, 9, 1)
    assert repository.get_counter("t1", "executions").used == 9  # type: ignore[union-attr]


def test_a_soft_quota_counts_past_its_limit(clock: Clock) -> None:
    service, _repository = subscribed(clock, "soft")
    answers = [service.consume("t1", "executions", Decimal(2)) for _ in range(4)]
    assert all(a.allowed for a in answers)
    assert (answers[-1].used, answers[-1].remaining) == (8, 0)  # past the limit: counted, none left


def test_a_consume_after_the_period_ended_rolls_the_counter_over_once(clock: Clock) -> None:
    service, repository = subscribed(clock, "free")
    service.consume("t1", "executions", Decimal(9))
    clock.now = add_months(START, 1) + timedelta(hours=1)

    answer = service.consume("t1", "executions", Decimal(4))

    assert (answer.allowed, answer.used, answer.remaining) == (True, 4, 6)
    assert answer.resets_at == add_months(START, 2)
    assert repository.requests.count("UpdateItem") >= 2  # the refused take, the rollover, the take


def test_a_suspended_tenant_is_denied_and_keeps_its_usage(clock: Clock) -> None:
    service, repository = subscribed(clock)
    service.consume("t1", "executions", Decimal(5))
    service.suspend("t1", "unpaid")

    answer = service.consume("t1", "executions", Decimal(1))

    assert (answer.allowed, answer.reason, answer.used) == (False, DenyReason.SUSPENDED, 5)
    assert repository.get_counter("t1", "executions").state is CounterState.SUSPENDED  # type: ignore[union-attr]


def test_an_upgrade_keeps_the_usage_of_the_period_and_raises_the_limit(clock: Clock) -> None:
    service, _repository = subscribed(clock, "free")
    service.consume("t1", "executions", Decimal(7))

    service.apply_plan("t1", "pro", period_start=START, period_end=add_months(START, 1), source_version=2)

    answer = service.check("t1", "executions", Decimal(1))
    assert (answer.allowed, answer.used, answer.remaining, answer.limit) == (True, 7, 93, 100)


def test_a_sharded_plan_spreads_the_quota_and_never_grants_past_it(clock: Clock) -> None:
    service, repository = subscribed(clock, "hot")
    answers = [service.consume("t1", "executions", Decimal(1)) for _ in range(12)]

    assert sum(a.allowed for a in answers) == 8
    shards = repository.get_layout("t1", "executions", 4)
    assert sum(c.used for c in shards) == 8
    assert all(c.remaining == 0 for c in shards)


def test_a_release_gives_back_at_most_what_was_used(clock: Clock) -> None:
    service, _repository = subscribed(clock, "free")
    service.consume("t1", "executions", Decimal(3))

    answer = service.release("t1", "executions", Decimal(5))

    assert (answer.quantity, answer.used, answer.remaining) == (3, 0, 10)


def test_a_keyed_consume_takes_once_and_every_retry_gets_the_first_answer(clock: Clock) -> None:
    service, repository = subscribed(clock, "free")
    request = ConsumeRequest("t1", "executions", Decimal(4), idempotency_key="job-1")

    first = service.consume_request(request)
    again = service.consume_request(request)

    assert (first.allowed, first.used, again.replayed, again.used) == (True, 4, True, 4)
    assert repository.get_counter("t1", "executions").used == 4  # type: ignore[union-attr]
    with pytest.raises(UnprocessableError):
        service.consume_request(ConsumeRequest("t1", "executions", Decimal(5), idempotency_key="job-1"))


def test_a_keyed_denial_is_stored_and_replayed(clock: Clock) -> None:
    service, repository = subscribed(clock, "free")
    service.consume("t1", "executions", Decimal(9))
    request = ConsumeRequest("t1", "executions", Decimal(4), idempotency_key="job-2")

    denial = service.consume_request(request)
    service.release("t1", "executions", Decimal(9))
    again = service.consume_request(request)

    assert (denial.allowed, again.allowed, again.replayed) == (False, False, True)
    assert repository.get_counter("t1", "executions").used == 0  # type: ignore[union-attr]


def test_the_unkeyed_path_never_touches_consume_records(clock: Clock) -> None:
    service, repository = subscribed(clock, "free")
    for _ in range(3):
        service.consume("t1", "executions", Decimal(1))
    assert repository.records == {}
