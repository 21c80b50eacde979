"""The entitlement API through real API Gateway proxy events, the real handler and moto DynamoDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import ModuleType
from typing import Any

import boto3
import pytest

from billing_platform import clients
from billing_platform.audit.log import AuditLog
from billing_platform.auth.caller import Actor
from billing_platform.auth.service import ApiKeyService
from billing_platform.conditions import TRANSACT_ATTEMPTS
from tests.factories.apigw import api_event, json_body
from tests.factories.faults import ThrottledTransactions
from tests.factories.handlers import load_handler
from tests.factories.lambda_context import LambdaContext

NOW = datetime.now(UTC).replace(microsecond=0)
PERIOD = {"period_start": NOW - timedelta(days=3), "period_end": NOW + timedelta(days=27)}


@pytest.fixture
def api(moto_aws: dict[str, str]) -> ModuleType:
    module = load_handler("entitlements")
    module.service().apply_plan("acme", "free", **PERIOD, source_version=1)
    return module


def call(module: ModuleType, method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
    response = module.handler(api_event(method, path, body, **kwargs), LambdaContext())
    return response["statusCode"], json_body(response)


def table_items(names: dict[str, str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = boto3.client("dynamodb").scan(TableName=names["BILLING_TABLE_NAME"])["Items"]
    return items


def test_consume_returns_the_counter_and_check_does_not_consume(api: ModuleType) -> None:
    status, body = call(
        api,
        "POST",
        "/v1/entitlements/consume",
        {"tenant_id": "acme", "resource_type": "executions", "quantity": 3},
        tenant_id="acme",
    )
    assert status == 200
    assert body["allowed"] is True
    assert (body["limit"], body["used"], body["remaining"]) == ("100", "3", "97")
    assert body["resets_at"] == PERIOD["period_end"].isoformat()

    status, body = call(
        api,
        "POST",
        "/v1/entitlements/check",
        {"tenant_id": "acme", "resource_type": "executions", "quantity": "97"},
        tenant_id="acme",
    )
    assert (status, body["allowed"], body["remaining"]) == (200, True, "97")
    status, body = call(
        api,
        "POST",
        "/v1/entitlements/check",
        {"tenant_id": "acme", "resource_type": "executions", "quantity": "98"},
        tenant_id="acme",
    )
    assert (status, body["allowed"], body["reason"]) == (200, False, "quota_exhausted")
    assert api.service().check("acme", "executions").used == Decimal(3)


def test_exhausted_quota_answers_402_with_resource_remaining_and_reset(api: ModuleType) -> None:
    status, _ = call(
        api,
        "POST",
        "/v1/entitlements/consume",
        {"tenant_id": "acme", "resource_type": "executions", "quantity": 99},
        tenant_id="acme",
    )
    assert status == 200
    status, body = call(
        api,
        "POST",
        "/v1/entitlements/consume",
        {"tenant_id": "acme", "resource_type": "executions", "quantity": 2},
        tenant_id="acme",
    )
    assert status == 402
    assert body["code"] == "quota_exceeded"
    assert body["resource_type"] == "executions"
    assert body["remaining"] == "1"
    assert body["resets_at"] == PERIOD["period_end"].isoformat()
    assert body["details"]["limit"] == "100"
    # The denial consumed nothing.
    assert api.service().check("acme", "executions").used == Decimal(99)


def test_release_gives_quota_back_but_never_below_zero(api: ModuleType) -> None:
    call(
        api,
        "POST",
        "/v1/entitlements/consume",
        {"tenant_id": "acme", "resource_type": "tokens", "quantity": "10.5"},
        tenant_id="acme",
    )
    status, body = call(
        api,
        "POST",
        "/v1/entitlements/release",
        {"tenant_id": "acme", "resource_type": "tokens", "quantity": "4"},
        tenant_id="acme",
    )
    assert (status, body["released"], body["used"]) == (200, "4", "6.5")
    status, body = call(
        api,
        "POST",
        "/v1/entitlements/release",
        {"tenant_id": "acme", "resource_type": "tokens", "quantity": "100"},
        tenant_id="acme",
    )
    assert (status, body["released"], body["used"], body["remaining"]) == (200, "6.5", "0", "10000")
    entries = AuditLog().list("acme")
    assert [(e.action, e.target, e.actor, (e.after or {}).get("released")) for e in entries] == [
        ("entitlement.release", "tokens", "tenant:acme:key:key_acme", "6.5"),
        ("entitlement.release", "tokens", "tenant:acme:key:key_acme", "4"),
    ]


def test_idempotent_consume_over_the_api_consumes_once(api: ModuleType) -> None:
    request = {"tenant_id": "acme", "resource_type": "api_calls", "quantity": 5, "idempotency_key": "job-42"}
    first = call(api, "POST", "/v1/entitlements/consume", request, tenant_id="acme")
    second = call(api, "POST", "/v1/entitlements/consume", request, tenant_id="acme")
    assert first[0] == second[0] == 200
    assert second[1]["replayed"] is True
    assert {k: v for k, v in second[1].items() if k != "replayed"} == {
        k: v for k, v in first[1].items() if k != "replayed"
    }
    assert api.service().check("acme", "api_calls").used == Decimal(5)
    reused = {**request, "quantity": 6}
    status, body = call(api, "POST", "/v1/entitlements/consume", reused, tenant_id="acme")
    assert (status, body["code"]) == (422, "idempotency_key_reused")
    assert api.service().check("acme", "api_calls").used == Decimal(5)
    status, body = call(
        api,
        "POST",
        "/v1/entitlements/release",
        {"tenant_id": "acme", "resource_type": "api_calls", "idempotency_key": "job-42"},
        tenant_id="acme",
    )
    assert (status, body["released"], body["used"]) == (200, "5", "0")
    status, body = call(
        api,
        "POST",
        "/v1/entitlements/release",
        {"tenant_id": "acme", "resource_type": "api_calls", "idempotency_key": "job-42"},
        tenant_id="acme",
    )
    assert (status, body["released"], body["used"]) == (200, "0", "0")


def test_a_keyed_release_throttled_beyond_retries_is_a_429_and_a_retry_gives_back_once(api: ModuleType) -> None:
    request = {"tenant_id": "acme", "resource_type": "api_calls", "quantity": 5, "idempotency_key": "job-7"}
    assert call(api, "POST", "/v1/entitlements/consume", request, tenant_id="acme")[0] == 200
    release = {"tenant_id": "acme", "resource_type": "api_calls", "idempotency_key": "job-7"}
    faults = ThrottledTransactions(clients.dynamodb(), TRANSACT_ATTEMPTS)

    status, body = call(api, "POST", "/v1/entitlements/release", release, tenant_id="acme")

    # Not "already released" (200, released 0): the quota would never come back.
    assert (status, body["code"], faults.refused) == (429, "rate_limited", TRANSACT_ATTEMPTS)
    assert api.service().check("acme", "api_calls").used == Decimal(5)
    status, body = call(api, "POST", "/v1/entitlements/release", release, tenant_id="acme")
    assert (status, body["released"], body["used"]) == (200, "5", "0")
    status, body = call(api, "POST", "/v1/entitlements/release", release, tenant_id="acme")
    assert (status, body["released"], body["used"]) == (200, "0", "0")


def test_list_shows_every_quota_and_feature(api: ModuleType) -> None:
    call(
        api,
        "POST",
        "/v1/entitlements/consume",
        {"tenant_id": "acme", "resource_type": "storage_mb", "quantity": 7},
        tenant_id="acme",
    )
    status, body = call(api, "GET", "/v1/tenants/acme/entitlements", tenant_id="acme")
    assert status == 200
    assert body["plan_id"] == "free"
    assert body["features"]["sso"] is False
    quotas = {q["resource_type"]: q for q in body["quotas"]}
    assert set(quotas) == {"executions", "tokens", "api_calls", "storage_mb"}
    assert (quotas["storage_mb"]["limit"], quotas["storage_mb"]["used"], quotas["storage_mb"]["remaining"]) == (
        "100",
        "7",
        "93",
    )
    assert quotas["storage_mb"]["period_end"] == PERIOD["period_end"].isoformat()


# Each case also goes to every route: none may write, whatever the route.
BAD_QUANTITIES: list[Any] = [-1, 0, "NaN", "Infinity", "-Infinity", "0.0000001", "1e30", 10**20, "ten", True, None]
BAD_BODIES: list[Any] = [
    {"tenant_id": "acme", "resource_type": "gpu_hours", "quantity": 1},  # unknown resource
    {"tenant_id": "acme", "quantity": 1},  # no resource
    {"tenant_id": "acme", "resource_type": "executions", "extra": 1},  # unknown field
    {"tenant_id": "acme", "resource_type": "executions", "idempotency_key": "a b"},
    "not json",
]


def test_bad_quantity_is_422_and_writes_nothing(api: ModuleType, moto_aws: dict[str, str]) -> None:
    before = table_items(moto_aws)
    for quantity in BAD_QUANTITIES:
        for route in ("consume", "check", "release"):
            body = {"tenant_id": "acme", "resource_type": "executions", "quantity": quantity}
            status, answer = call(api, "POST", f"/v1/entitlements/{route}", body, tenant_id="acme")
            assert status == 422, (quantity, route, answer)
    assert table_items(moto_aws) == before


def test_unknown_resource_or_malformed_body_is_422_and_writes_nothing(
    api: ModuleType, moto_aws: dict[str, str]
) -> None:
    before = table_items(moto_aws)
    for body in BAD_BODIES:
        for route in ("consume", "check", "release"):
            status, answer = call(api, "POST", f"/v1/entitlements/{route}", body, tenant_id="acme")
            assert status == 422, (body, route, answer)
    assert table_items(moto_aws) == before


def test_unknown_tenant_is_404(api: ModuleType) -> None:
    status, body = call(
        api, "POST", "/v1/entitlements/consume", {"tenant_id": "ghost", "resource_type": "executions"}, operator=True
    )
    assert (status, body["code"]) == (404, "unknown_tenant")
    status, _ = call(api, "GET", "/v1/tenants/ghost/entitlements", operator=True)
    assert status == 404


def test_tenant_without_subscription_gets_the_default_plan(api: ModuleType) -> None:
    ApiKeyService().create("newco", name="ci", actor=Actor("operator:test"))
    status, body = call(
        api,
        "POST",
        "/v1/entitlements/consume",
        {"tenant_id": "newco", "resource_type": "executions"},
        tenant_id="newco",
    )
    assert status == 200
    assert (body["limit"], body["used"]) == ("100", "1")
    status, listing = call(api, "GET", "/v1/tenants/newco/entitlements", tenant_id="newco")
    assert (status, listing["plan_id"], listing["subscribed"]) == (200, "free", False)


def test_a_tenant_key_cannot_touch_another_tenant(api: ModuleType, moto_aws: dict[str, str]) -> None:
    api.service().apply_plan("other", "pro", **PERIOD, source_version=1)
    before = table_items(moto_aws)
    status, body = call(
        api, "POST", "/v1/entitlements/consume", {"tenant_id": "other", "resource_type": "executions"}, tenant_id="acme"
    )
    assert (status, body["code"]) == (403, "forbidden")
    status, _ = call(
        api,
        "POST",
        "/v1/entitlements/release",
        {"tenant_id": "other", "resource_type": "executions", "quantity": 1},
        tenant_id="acme",
    )
    assert status == 403
    status, _ = call(api, "GET", "/v1/tenants/other/entitlements", tenant_id="acme")
    assert status == 403
    assert table_items(moto_aws) == before
    status, _ = call(api, "POST", "/v1/entitlements/consume", {"tenant_id": "acme", "resource_type": "executions"})
    assert status == 401


def test_soft_quota_allows_overage_and_unlimited_counts(api: ModuleType) -> None:
    api.service().apply_plan("acme", "pro", **PERIOD, source_version=2)
    status, body = call(
        api,
        "POST",
        "/v1/entitlements/consume",
        {"tenant_id": "acme", "resource_type": "tokens", "quantity": 2_000_010},
        tenant_id="acme",
    )
    assert (status, body["allowed"], body["policy"], body["overage"], body["remaining"]) == (
        200,
        True,
        "soft",
        "10",
        "0",
    )
    api.service().apply_plan("acme", "enterprise", **PERIOD, source_version=3)
    status, body = call(
        api,
        "POST",
        "/v1/entitlements/consume",
        {"tenant_id": "acme", "resource_type": "executions", "quantity": 10**9},
        tenant_id="acme",
    )
    assert (status, body["allowed"], body["policy"], body["limit"], body["remaining"]) == (
        200,
        True,
        "unlimited",
        None,
        None,
    )
    assert api.service().check("acme", "executions").used == Decimal(10**9)


def test_checks_disabled_allow_everything_and_still_record(moto_aws: dict[str, str], env: pytest.MonkeyPatch) -> None:
    env.setenv("ENTITLEMENT_CHECK_ENABLED", "false")
    from tests.conftest import reset_caches

    reset_caches()
    module = load_handler("entitlements")
    module.service().apply_plan("acme", "free", **PERIOD, source_version=1)
    status, body = call(
        module,
        "POST",
        "/v1/entitlements/consume",
        {"tenant_id": "acme", "resource_type": "executions", "quantity": 150},
        tenant_id="acme",
    )
    assert (status, body["allowed"], body["enforced"], body["used"]) == (200, True, False, "150")
