"""The reservation API through real API Gateway proxy events, the real handler, moto DynamoDB and the moto
usage queue: status codes, tenant isolation, bad input writes nothing, the OpenAPI document."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import ModuleType
from typing import Any

import boto3
import pytest

from billing_platform.grants.repository import GrantRepository
from billing_platform.reservations.models import new_reservation_id
from tests.factories.apigw import api_event, json_body
from tests.factories.grants import add_grant, grants_of
from tests.factories.handlers import load_handler
from tests.factories.lambda_context import LambdaContext

NOW = datetime.now(UTC).replace(microsecond=0)
PERIOD = {"period_start": NOW - timedelta(days=3), "period_end": NOW + timedelta(days=27)}
BASE = "/v1/entitlements/reservations"


@pytest.fixture
def api(moto_aws: dict[str, str]) -> ModuleType:
    module = load_handler("reservations")
    for tenant in ("acme", "globex"):
        module.service().entitlements.apply_plan(tenant, "free", **PERIOD, source_version=1)
    return module


def call(module: ModuleType, method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
    response = module.handler(api_event(method, path, body, **kwargs), LambdaContext())
    return response["statusCode"], json_body(response)


def used(module: ModuleType, tenant: str = "acme") -> Decimal:
    return Decimal(module.service().entitlements.check(tenant, "tokens").used)


def billing_items(names: dict[str, str]) -> int:
    return len(boto3.client("dynamodb").scan(TableName=names["BILLING_TABLE_NAME"])["Items"])


def reserve(module: ModuleType, estimate: Any = "4000", tenant: str = "acme", **extra: Any) -> tuple[int, Any]:
    body = {"tenant_id": tenant, "resource_type": "tokens", "estimate": estimate, **extra}
    return call(module, "POST", BASE, body, tenant_id=tenant)


def test_reserve_settle_and_read_back(api: ModuleType) -> None:
    status, held = reserve(api, ttl_seconds=120)
    assert status == 201
    assert (held["state"], held["estimate"], held["replayed"]) == ("held", "4000", False)
    assert used(api) == 4000
    rid = held["reservation_id"]

    status, settled = call(api, "POST", f"{BASE}/{rid}/settle", {"quantity": "3100"}, tenant_id="acme")
    assert (status, settled["state"], settled["charged"], settled["given_back"]) == (200, "settled", "3100", "900")
    assert used(api) == 3100
    status, again = call(api, "POST", f"{BASE}/{rid}/settle", {"quantity": "3100"}, tenant_id="acme")
    assert (status, again["replayed"], again["charged"]) == (200, True, "3100")
    status, other = call(api, "POST", f"{BASE}/{rid}/settle", {"quantity": "10"}, tenant_id="acme")
    assert (status, other["code"]) == (409, "reservation_settled")
    status, read = call(api, "GET", f"{BASE}/{rid}", tenant_id="acme")
    assert (status, read["state"], read["actual"]) == (200, "settled", "3100")
    assert used(api) == 3100


def test_cancel_and_idempotent_reserve(api: ModuleType) -> None:
    status, first = reserve(api, "700", idempotency_key="job-7")
    status_again, second = reserve(api, "700", idempotency_key="job-7")
    assert (status, status_again, second["replayed"]) == (201, 200, True)
    assert first["reservation_id"] == second["reservation_id"]
    assert used(api) == 700
    status, cancelled = call(api, "DELETE", f"{BASE}/{first['reservation_id']}", tenant_id="acme")
    assert (status, cancelled["state"], cancelled["given_back"]) == (200, "cancelled", "700")
    status, again = call(api, "DELETE", f"{BASE}/{first['reservation_id']}", tenant_id="acme")
    assert (status, again["replayed"]) == (200, True)
    assert used(api) == 0


def test_an_estimate_beyond_the_quota_answers_402_and_holds_nothing(api: ModuleType, moto_aws: dict[str, str]) -> None:
    before = billing_items(moto_aws)
    status, body = reserve(api, "10001")
    assert (status, body["code"], body["remaining"]) == (402, "quota_exceeded", "10000")
    assert billing_items(moto_aws) == before
    assert used(api) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"tenant_id": "acme", "resource_type": "tokens", "estimate": "-5"},
        {"tenant_id": "acme", "resource_type": "tokens", "estimate": "0"},
        {"tenant_id": "acme", "resource_type": "tokens", "estimate": "NaN"},
        {"tenant_id": "acme", "resource_type": "tokens", "estimate": "1.0000001"},
        {"tenant_id": "acme", "resource_type": "nope", "estimate": "5"},
        {"tenant_id": "acme", "resource_type": "tokens", "estimate": "5", "ttl_seconds": 0},
        {"tenant_id": "acme", "resource_type": "tokens", "estimate": "5", "ttl_seconds": 86401},
        {"tenant_id": "acme", "resource_type": "tokens", "estimate": "5", "surprise": 1},
        {"tenant_id": "acme", "resource_type": "tokens"},
    ],
)
def test_bad_reserve_input_is_422_and_writes_nothing(
    api: ModuleType, moto_aws: dict[str, str], body: dict[str, Any]
) -> None:
    before = billing_items(moto_aws)
    status, answer = call(api, "POST", BASE, body, tenant_id="acme")
    assert status == 422, answer
    assert billing_items(moto_aws) == before


def test_bad_settle_input_changes_nothing(api: ModuleType) -> None:
    _status, held = reserve(api, "100")
    rid = held["reservation_id"]
    for body in ({"quantity": "-1"}, {"quantity": "Infinity"}, {}, {"quantity": "1", "extra": True}):
        status, _ = call(api, "POST", f"{BASE}/{rid}/settle", body, tenant_id="acme")
        assert status == 422
    status, _ = call(api, "POST", f"{BASE}/not-an-id/settle", {"quantity": "1"}, tenant_id="acme")
    assert status == 422
    status, read = call(api, "GET", f"{BASE}/{rid}", tenant_id="acme")
    assert (status, read["state"]) == (200, "held")
    assert used(api) == 100


def test_tenants_cannot_reach_each_others_reservations(api: ModuleType) -> None:
    _status, held = reserve(api, "100")
    rid = held["reservation_id"]
    for method, path, body in (
        ("GET", f"{BASE}/{rid}", None),
        ("DELETE", f"{BASE}/{rid}", None),
        ("POST", f"{BASE}/{rid}/settle", {"quantity": "1"}),
    ):
        status, answer = call(api, method, path, body, tenant_id="globex")
        assert (status, answer["code"]) == (404, "unknown_reservation")
    status, _ = call(api, "GET", f"{BASE}/{rid}", query={"tenant_id": "acme"}, tenant_id="globex")
    assert status == 403
    body = {"tenant_id": "acme", "resource_type": "tokens", "estimate": "5"}
    status, _ = call(api, "POST", BASE, body, tenant_id="globex")
    assert status == 403
    status, _ = call(api, "GET", f"{BASE}/{new_reservation_id()}", tenant_id="acme")
    assert status == 404
    assert used(api) == 100
    assert used(api, "globex") == 0


def test_operator_names_the_tenant(api: ModuleType) -> None:
    _status, held = reserve(api, "100")
    status, read = call(api, "GET", f"{BASE}/{held['reservation_id']}", query={"tenant_id": "acme"}, operator=True)
    assert (status, read["tenant_id"]) == (200, "acme")
    status, answer = call(api, "GET", f"{BASE}/{held['reservation_id']}", operator=True)
    assert (status, answer["code"]) == (422, "missing_tenant")


def test_sweeper_handler_expires_what_is_due(api: ModuleType, moto_aws: dict[str, str]) -> None:
    _status, held = reserve(api, "100", ttl_seconds=1)
    sweeper = load_handler("reservation_sweeper")
    time.sleep(2.1)  # the deployed sweeper runs on real time
    report = sweeper.handler({"id": "evt-1", "source": "aws.events"}, LambdaContext())
    assert report["expired"] == 1
    assert used(api) == 0
    status, answer = call(api, "POST", f"{BASE}/{held['reservation_id']}/settle", {"quantity": "1"}, tenant_id="acme")
    assert (status, answer["code"]) == (409, "reservation_expired")


def test_openapi_documents_the_reservation_routes(api: ModuleType) -> None:
    document = api.app.get_openapi_schema().model_dump(by_alias=True, exclude_none=True)
    paths = document["paths"]
    assert set(paths[BASE]) == {"post"}
    assert set(paths[BASE + "/{reservation_id}"]) == {"get", "delete"}
    assert set(paths[BASE + "/{reservation_id}/settle"]) == {"post"}
    assert "201" in {str(k) for k in paths[BASE]["post"]["responses"]}


def test_a_reserve_past_the_quota_is_paid_by_a_grant_and_a_cancel_refills_it(api: ModuleType) -> None:
    grants = GrantRepository(api.service().entitlements._ctx.settings)
    grant_id = add_grant(grants, "acme", "tokens", 500)
    status, _ = reserve(api, "9800")
    assert status == 201
    status, held = reserve(api, "300", idempotency_key="past-quota")
    assert (status, held["from_grants"]) == (201, [{"grant_id": grant_id, "quantity": "100"}])
    status, again = reserve(api, "300", idempotency_key="past-quota")  # a retry: the grant is drawn once
    assert (status, again["replayed"], again["from_grants"]) == (200, True, held["from_grants"])
    assert grants_of(grants, "acme", "tokens")[grant_id].remaining == Decimal(400)
    status, denied = reserve(api, "401")
    assert (status, denied["details"]["grant_remaining"]) == (402, "400")

    status, cancelled = call(api, "DELETE", f"{BASE}/{held['reservation_id']}", tenant_id="acme")
    assert (status, cancelled["given_back"], cancelled["forfeited"]) == (200, "300", "0")
    assert grants_of(grants, "acme", "tokens")[grant_id].remaining == Decimal(500)
    assert used(api) == 9800
