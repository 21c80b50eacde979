"""The entitlement library (enforcer, decorator, async use) and the plan effects the Stripe webhooks
drive, against moto DynamoDB with the real layer code."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import boto3
import pytest

from billing_platform import clients
from billing_platform.api.app import create_app
from billing_platform.enforcer import EntitlementEnforcer, check_entitlement_or_raise, require_entitlement
from billing_platform.entitlements.models import add_months
from billing_platform.entitlements.service import EntitlementService
from billing_platform.errors import EntitlementEnforcementError, QuotaExceededError, UnprocessableError
from billing_platform.settings import get_settings
from billing_platform.subscriptions.webhooks import EntitlementEffects
from tests.factories.apigw import api_event, json_body
from tests.factories.lambda_context import LambdaContext

NOW = datetime.now(UTC).replace(microsecond=0)
START = NOW - timedelta(days=3)
END = add_months(START, 1)


class Clock:
    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(moto_aws: dict[str, str], clock: Clock) -> EntitlementService:
    svc = EntitlementService(get_settings(), clock=clock)
    svc.apply_plan("acme", "free", period_start=START, period_end=END, source_version=10)
    return svc


@pytest.fixture
def enforcer(service: EntitlementService) -> EntitlementEnforcer:
    return EntitlementEnforcer(service)


def count_requests() -> list[str]:
    """Operation names of every DynamoDB request the layer's client sends from now on."""
    sent: list[str] = []
    clients.dynamodb().meta.events.register(
        "before-send.dynamodb.*",
        lambda request, **kw: sent.append(request.headers["X-Amz-Target"].decode().split(".")[-1]),
    )
    return sent


def test_hot_path_is_exactly_one_conditional_update(enforcer: EntitlementEnforcer) -> None:
    enforcer.sync.check_and_record("acme", "executions")  # warm: layout known
    sent = count_requests()
    for _ in range(5):
        assert enforcer.sync.check_and_record("acme", "executions").allowed
    assert sent == ["UpdateItem"] * 5


def test_check_and_record_reports_limit_used_remaining_and_reset(enforcer: EntitlementEnforcer) -> None:
    check = enforcer.sync.check_and_record("acme", "tokens", 250)
    assert (check.allowed, check.limit, check.used, check.remaining, check.resets_at) == (
        True,
        Decimal(10000),
        Decimal(250),
        Decimal(9750),
        END,
    )
    with pytest.raises(UnprocessableError):  # floats never enter quota math
        enforcer.sync.check_and_record("acme", "tokens", 1.5)  # type: ignore[arg-type]


def test_check_entitlement_or_raise(enforcer: EntitlementEnforcer) -> None:
    assert check_entitlement_or_raise(enforcer.sync.check_and_record("acme", "executions", 100)).allowed
    denied = enforcer.sync.check_and_record("acme", "executions")
    with pytest.raises(QuotaExceededError) as info:
        check_entitlement_or_raise(denied)
    assert info.value.http_status == 402
    body = info.value.to_dict()
    assert (body["resource_type"], body["remaining"], body["resets_at"]) == ("executions", "0", END.isoformat())


def test_decorated_lambda_handler_runs_only_when_allowed_and_releases_on_failure(enforcer: EntitlementEnforcer) -> None:
    calls: list[str] = []

    @require_entitlement("executions", Decimal(40), enforcer=enforcer)
    def handler(event: dict[str, Any], context: Any) -> str:
        calls.append(event["body"])
        if event["body"] == "boom":
            raise RuntimeError("job failed")
        return "done"

    event = api_event("POST", "/v1/jobs", "ok", tenant_id="acme")  # tenant from the authorizer context
    assert handler(event, LambdaContext()) == "done"
    with pytest.raises(RuntimeError):
        handler(api_event("POST", "/v1/jobs", "boom", tenant_id="acme"), LambdaContext())
    assert enforcer.sync.check("acme", "executions").used == 40  # the failed run gave its 40 back
    assert handler(event, LambdaContext()) == "done"
    with pytest.raises(QuotaExceededError):
        handler(api_event("POST", "/v1/jobs", "denied", tenant_id="acme"), LambdaContext())
    assert calls == ["ok", "boom", "ok"]  # the denied call never ran
    assert enforcer.sync.check("acme", "executions").used == 80


def test_decorated_powertools_route_answers_402_and_releases_on_error(enforcer: EntitlementEnforcer) -> None:
    app = create_app(title="jobs")

    @app.post("/v1/tenants/<tenant_id>/jobs")
    @require_entitlement("storage_mb", lambda tenant_id: Decimal(30), enforcer=enforcer)
    def start_job(tenant_id: str) -> dict[str, str]:
        if app.current_event.json_body.get("fail"):
            raise ValueError("bad job")
        return {"tenant_id": tenant_id}

    def post(body: dict[str, Any]) -> dict[str, Any]:
        return app.resolve(api_event("POST", "/v1/tenants/acme/jobs", body, tenant_id="acme"), LambdaContext())

    assert post({})["statusCode"] == 200
    with pytest.raises(ValueError, match="bad job"):
        post({"fail": True})
    assert enforcer.sync.check("acme", "storage_mb").used == 30
    assert [post({})["statusCode"] for _ in range(3)] == [200, 200, 402]
    denied = json_body(post({}))
    assert (denied["resource_type"], denied["remaining"]) == ("storage_mb", "10")


def test_decorated_route_without_tenant_argument_uses_the_authorizer_tenant(enforcer: EntitlementEnforcer) -> None:
    app = create_app(title="jobs")

    @app.post("/v1/jobs")
    @require_entitlement("executions", Decimal(60), enforcer=enforcer, app=app)
    def start_job() -> dict[str, str]:
        return {"started": "yes"}

    statuses = [
        app.resolve(api_event("POST", "/v1/jobs", {}, tenant_id="acme"), LambdaContext())["statusCode"]
        for _ in range(2)
    ]
    assert statuses == [200, 402]
    assert enforcer.sync.check("acme", "executions").used == 60


def test_features_are_cached_but_quota_never_is(moto_aws: dict[str, str], enforcer: EntitlementEnforcer) -> None:
    assert enforcer.sync.has_feature("acme", "sso") is False
    with pytest.raises(EntitlementEnforcementError):
        enforcer.sync.require_feature("acme", "sso")
    # The plan changes through another container (the webhook function).
    EntitlementService(get_settings()).apply_plan(
        "acme", "enterprise", period_start=START, period_end=END, source_version=11
    )
    assert enforcer.sync.has_feature("acme", "sso") is False  # cached for the TTL
    assert enforcer.sync.check_and_record("acme", "executions", 10**6).allowed  # the quota is live
    fresh = EntitlementEnforcer(EntitlementService(get_settings(), cache_ttl_seconds=0))
    assert fresh.sync.has_feature("acme", "sso") is True


def test_service_satisfies_the_webhook_protocol(service: EntitlementService) -> None:
    effects: EntitlementEffects = service  # mypy checks the signature; this checks the wiring
    assert callable(effects.apply_plan)
    assert callable(effects.suspend)
    assert callable(effects.revoke)


def test_upgrade_raises_quota_at_once_and_keeps_the_period_usage(service: EntitlementService) -> None:
    service.consume("acme", "executions", Decimal(100))
    assert not service.consume("acme", "executions").allowed
    service.apply_plan("acme", "pro", period_start=START, period_end=END, source_version=11)
    check = service.consume("acme", "executions")
    assert (check.allowed, check.used, check.limit) == (True, 101, 10000)


def test_older_plan_application_is_a_no_op(service: EntitlementService) -> None:
    service.apply_plan("acme", "pro", period_start=START, period_end=END, source_version=12)
    service.apply_plan("acme", "free", period_start=START, period_end=END, source_version=11)
    assert service.entitlements("acme").plan.plan_id == "pro"
    assert service.check("acme", "executions").limit == 10000


def test_renewal_resets_the_period_but_not_after_a_lazy_rollover(service: EntitlementService, clock: Clock) -> None:
    service.consume("acme", "executions", Decimal(60))
    clock.offset = END - datetime.now(UTC) + timedelta(minutes=1)
    after = service.consume("acme", "executions", Decimal(5))  # lazy rollover, then 5 in the new period
    next_end = add_months(START, 2)
    assert (after.used, after.resets_at) == (5, next_end)
    # The renewal webhook for the period the rollover already started must not grant it again.
    service.apply_plan("acme", "free", period_start=END, period_end=next_end, source_version=11)
    assert service.check("acme", "executions").used == 5
    # A later renewal (a new period) starts afresh.
    service.apply_plan("acme", "free", period_start=next_end, period_end=add_months(START, 3), source_version=12)
    assert service.check("acme", "executions").used == 0


def test_suspend_denies_and_reapplying_the_plan_resumes(service: EntitlementService) -> None:
    service.apply_plan("acme", "pro", period_start=START, period_end=END, source_version=11)
    service.consume("acme", "executions", Decimal(7))
    service.suspend("acme", "subscription unpaid")
    denied = service.consume("acme", "executions")
    assert (denied.allowed, denied.reason and denied.reason.value, denied.used) == (False, "suspended", 7)
    assert service.has_feature("acme", "audit_export") is False
    service.apply_plan("acme", "pro", period_start=START, period_end=END, status="active", source_version=12)
    assert service.consume("acme", "executions").allowed
    assert service.check("acme", "executions").used == 8


def test_revoke_returns_to_the_free_plan_without_refilling(service: EntitlementService) -> None:
    service.apply_plan("acme", "pro", period_start=START, period_end=END, source_version=11)
    service.consume("acme", "executions", Decimal(500))
    service.revoke("acme")
    listing = service.entitlements("acme")
    assert listing.plan.plan_id == "free"
    executions = next(q for q in listing.quotas if q.resource_type == "executions")
    assert (executions.limit, executions.used, executions.remaining) == (100, 500, 0)
    assert not service.consume("acme", "executions").allowed
    # A late event of the old subscription cannot bring the paid plan back.
    service.apply_plan("acme", "pro", period_start=START, period_end=END, source_version=9)
    assert service.entitlements("acme").plan.plan_id == "free"


def test_plan_switch_to_sharded_layout_carries_usage(service: EntitlementService, moto_aws: dict[str, str]) -> None:
    service.apply_plan("acme", "pro", period_start=START, period_end=END, source_version=11)
    service.consume("acme", "storage_mb", Decimal(1000))
    service.apply_plan("acme", "enterprise", period_start=START, period_end=END, source_version=12)
    storage = service.check("acme", "storage_mb")
    assert (storage.used, storage.limit) == (1000, 1048576)
    items = boto3.client("dynamodb").scan(TableName=moto_aws["BILLING_TABLE_NAME"])["Items"]
    shards = [i for i in items if i["pk"]["S"].startswith("QUOTA#acme#storage_mb#")]
    assert len(shards) == 8
    # Another container still on the old layout learns the new one from the retired counter.
    stale = EntitlementService(get_settings())
    check = stale.consume("acme", "storage_mb", Decimal(5))
    assert check.allowed
    assert check.approximate
    service.apply_plan("acme", "pro", period_start=START, period_end=END, source_version=13)
    assert service.check("acme", "storage_mb").used == 1005
    assert stale.consume("acme", "storage_mb", Decimal(5)).allowed  # stale 8-shard cache -> leftover shard
    # Back to 8 shards: the leftovers of the first sharded layout must not be mistaken for usage.
    service.apply_plan("acme", "enterprise", period_start=START, period_end=END, source_version=14)
    assert service.check("acme", "storage_mb").used == 1010
    assert stale.consume("acme", "storage_mb", Decimal(10)).allowed
    assert service.check("acme", "storage_mb").used == 1020


def test_sharded_soft_quota_reports_overage(service: EntitlementService) -> None:
    service.apply_plan("acme", "enterprise", period_start=START, period_end=END, source_version=11)
    over = service.consume("acme", "tokens", Decimal(100_000_001))
    assert over.allowed
    assert over.approximate  # one shard seen
    assert over.overage > 0
    exact = service.check("acme", "tokens")
    assert (exact.used, exact.remaining, exact.overage, exact.approximate) == (100_000_001, 0, 1, False)


def test_a_denied_idempotent_consume_answers_the_same_on_retry(service: EntitlementService) -> None:
    service.consume("acme", "executions", Decimal(100))
    first = service.consume("acme", "executions", Decimal(5), idempotency_key="job-1")
    assert not first.allowed
    service.release("acme", "executions", Decimal(50))
    retry = service.consume("acme", "executions", Decimal(5), idempotency_key="job-1")
    assert (retry.allowed, retry.replayed, retry.remaining) == (False, True, 0)
    assert service.release("acme", "executions", idempotency_key="job-1").quantity == 0  # took nothing
    assert service.consume("acme", "executions", Decimal(5), idempotency_key="job-2").allowed
    assert service.check("acme", "executions").used == 55


# ---------------------------------------------------------------------- the two faces, UUID tenants

TENANT_UUID = UUID("6f1c2b1e-8d1f-4c53-9a0e-2f4f1b7c9d10")


def test_async_face_and_sync_face_are_one_enforcer(service: EntitlementService) -> None:
    """`await enforcer.check_and_record(...)` and `enforcer.sync.check_and_record(...)` consume the same
    counter through the same service; a UUID tenant id is its canonical string everywhere."""
    service.apply_plan(str(TENANT_UUID), "free", period_start=START, period_end=END, source_version=1)
    enforcer = EntitlementEnforcer(service)
    assert enforcer.sync.service is enforcer.service

    async def consume() -> list[Any]:
        first = await enforcer.check_and_record(
            tenant_id=TENANT_UUID, resource_type="executions", quantity=Decimal("1")
        )
        second = await enforcer.check(TENANT_UUID, "executions")
        return [first, second, await enforcer.has_feature(TENANT_UUID, "sso")]

    first, peek, sso = asyncio.run(consume())
    assert first.allowed
    assert first.tenant_id == "6f1c2b1e-8d1f-4c53-9a0e-2f4f1b7c9d10"
    assert peek.used == 1
    assert sso is False
    blocking = enforcer.sync.check_and_record(str(TENANT_UUID), "executions", 2)
    assert (blocking.used, blocking.remaining) == (Decimal(3), first.remaining - 2)


def test_async_face_refuses_bad_input_and_changes_nothing(enforcer: EntitlementEnforcer) -> None:
    async def bad() -> None:
        await enforcer.check_and_record("acme", "executions", 1.5)  # type: ignore[arg-type]

    with pytest.raises(UnprocessableError):
        asyncio.run(bad())
    with pytest.raises(EntitlementEnforcementError):
        asyncio.run(enforcer.require_feature("acme", "sso"))
    assert enforcer.sync.check("acme", "executions").used == 0


def test_decorated_coroutine_uses_the_enforcer_argument_and_a_uuid_tenant(service: EntitlementService) -> None:
    """The document's decorator shape: `tenant_id: UUID` and `enforcer: EntitlementEnforcer` parameters;
    the call's own enforcer is the one used, positional or keyword."""
    service.apply_plan(str(TENANT_UUID), "free", period_start=START, period_end=END, source_version=1)
    mine = EntitlementEnforcer(service)
    ran: list[UUID] = []

    @require_entitlement("executions", quantity=Decimal("40"))
    async def execute_workflow(tenant_id: UUID, workflow_id: UUID, enforcer: EntitlementEnforcer) -> str:
        ran.append(workflow_id)
        return "done"

    workflow = UUID(int=7)
    assert asyncio.run(execute_workflow(TENANT_UUID, workflow, mine)) == "done"
    assert asyncio.run(execute_workflow(tenant_id=TENANT_UUID, workflow_id=workflow, enforcer=mine)) == "done"
    with pytest.raises(QuotaExceededError) as info:
        asyncio.run(execute_workflow(TENANT_UUID, workflow, enforcer=mine))
    assert info.value.details["remaining"] == "20"
    assert ran == [workflow, workflow]
    assert mine.sync.check(TENANT_UUID, "executions").used == 80
