"""Operator grants through real API Gateway proxy events, the real entitlements handler and moto:
POST / GET /v1/tenants/{tenant_id}/grants, DELETE /v1/tenants/{tenant_id}/grants/{grant_id}, each
mutation audited with its before/after; bad input is a clear 4xx and writes nothing."""

from __future__ import annotations

from datetime import timedelta
from types import ModuleType
from typing import Any

import boto3
import pytest

from billing_platform.audit.log import AuditLog
from tests.factories.apigw import api_event, json_body
from tests.factories.lambda_context import LambdaContext

# The entitlement handler tests' `api` fixture: the real handler, tenant acme on the free plan.
from tests.integration.entitlements.test_entitlement_handler import NOW
from tests.integration.entitlements.test_entitlement_handler import api as api

GRANTS = "/v1/tenants/acme/grants"


def call(module: ModuleType, method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
    kwargs.setdefault("operator", True)
    response = module.handler(api_event(method, path, body, **kwargs), LambdaContext())
    return response["statusCode"], json_body(response)


def grant_items(names: dict[str, str]) -> list[dict[str, Any]]:
    items = boto3.client("dynamodb").scan(TableName=names["BILLING_TABLE_NAME"])["Items"]
    return [i for i in items if i["pk"]["S"].startswith("GRANTS#")]


def test_operator_creates_lists_and_voids_a_grant_each_audited(api: ModuleType, moto_aws: dict[str, str]) -> None:
    expires = (NOW + timedelta(days=30)).isoformat()
    status, created = call(
        api, "POST", GRANTS, {"resource_type": "executions", "amount": "250", "priority": 10, "expires_at": expires}
    )
    assert status == 201
    assert (created["amount"], created["remaining"], created["priority"], created["status"]) == (
        "250",
        "250",
        10,
        "active",
    )
    assert created["expires_at"] == expires
    assert (created["source"], created["created_by"]) == (
        "operator",
        "operator:arn:aws:iam::123456789012:user/operator",
    )

    status, listed = call(api, "GET", GRANTS)
    assert status == 200
    assert [g["grant_id"] for g in listed["grants"]] == [created["grant_id"]]

    status, voided = call(api, "DELETE", f"{GRANTS}/{created['grant_id']}")
    assert status == 200
    assert (voided["status"], voided["remaining"], voided["voided_amount"]) == ("voided", "0", "250")
    [item] = grant_items(moto_aws)
    assert (item["state"]["S"], item["remaining"]["N"], item["voided_amount"]["N"]) == ("voided", "0", "250")

    actions = [(e.action, e.target) for e in AuditLog().list("acme", newest_first=False)]
    assert actions[-2:] == [("grant.create", created["grant_id"]), ("grant.void", created["grant_id"])]
    void_entry = AuditLog().list("acme")[0]
    assert (void_entry.before or {})["remaining"] == "250"
    assert (void_entry.after or {})["voided_amount"] == "250"

    status, again = call(api, "DELETE", f"{GRANTS}/{created['grant_id']}")
    assert (status, again["code"]) == (409, "grant_voided")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"resource_type": "gold", "amount": "5"}, 422, "unknown_resource_type"),
        ({"resource_type": "executions", "amount": "0"}, 422, None),
        ({"resource_type": "executions", "amount": "-3"}, 422, None),
        ({"resource_type": "executions", "amount": "NaN"}, 422, None),
        ({"resource_type": "executions", "amount": "1.0000001"}, 422, None),
        ({"resource_type": "executions", "amount": "5", "priority": 101}, 422, None),
        ({"resource_type": "executions", "amount": "5", "expires_at": "2020-01-01T00:00:00Z"}, 422, "invalid_expiry"),
        ({"resource_type": "executions", "amount": "5", "expires_at": "2030-01-01T00:00:00"}, 422, None),
        ({"resource_type": "executions", "amount": "5", "owner": "x"}, 422, None),
    ],
)
def test_bad_grant_requests_are_refused_and_write_nothing(
    api: ModuleType, moto_aws: dict[str, str], body: dict[str, Any], status: int, code: str | None
) -> None:
    got, answer = call(api, "POST", GRANTS, body)
    assert got == status, answer
    if code:
        assert answer["code"] == code
    assert grant_items(moto_aws) == []


def test_grants_for_an_unknown_tenant_or_grant_are_404(api: ModuleType, moto_aws: dict[str, str]) -> None:
    status, body = call(api, "POST", "/v1/tenants/nobody/grants", {"resource_type": "executions", "amount": "5"})
    assert (status, body["code"]) == (404, "unknown_tenant")
    status, body = call(api, "DELETE", f"{GRANTS}/grt_0123456789abcdef")
    assert (status, body["code"]) == (404, "unknown_grant")
    assert grant_items(moto_aws) == []


def test_a_tenant_key_cannot_grant_itself_anything(api: ModuleType, moto_aws: dict[str, str]) -> None:
    status, _ = call(
        api, "POST", GRANTS, {"resource_type": "executions", "amount": "5"}, operator=False, tenant_id="acme"
    )
    assert status == 403
    status, _ = call(api, "GET", GRANTS, operator=False, tenant_id="acme")
    assert status == 403
    assert grant_items(moto_aws) == []


def test_a_tenant_consumes_past_its_plan_into_an_operator_grant_then_gets_402(api: ModuleType) -> None:
    expires = (NOW + timedelta(days=10)).isoformat()
    status, grant = call(api, "POST", GRANTS, {"resource_type": "executions", "amount": "30", "expires_at": expires})
    assert status == 201
    consume = {"tenant_id": "acme", "resource_type": "executions", "quantity": 90}

    status, first = call(api, "POST", "/v1/entitlements/consume", consume, operator=False, tenant_id="acme")
    assert (status, first["remaining"], first["from_grants"]) == (200, "10", [])
    status, checked = call(
        api, "POST", "/v1/entitlements/check", {**consume, "quantity": 40}, operator=False, tenant_id="acme"
    )
    assert (status, checked["allowed"], checked["remaining"], checked["grant_remaining"]) == (200, True, "10", "30")

    status, second = call(
        api, "POST", "/v1/entitlements/consume", {**consume, "quantity": 25}, operator=False, tenant_id="acme"
    )
    assert status == 200
    assert (second["remaining"], second["used"], second["grant_remaining"]) == ("0", "100", "15")
    assert second["from_grants"] == [{"grant_id": grant["grant_id"], "quantity": "15"}]

    status, denied = call(
        api, "POST", "/v1/entitlements/consume", {**consume, "quantity": 16}, operator=False, tenant_id="acme"
    )
    assert (status, denied["code"]) == (402, "quota_exceeded")
    assert (denied["details"]["remaining"], denied["details"]["grant_remaining"]) == ("0", "15")

    status, view = call(api, "GET", "/v1/tenants/acme/entitlements", operator=False, tenant_id="acme")
    assert status == 200
    [quota] = [q for q in view["quotas"] if q["resource_type"] == "executions"]
    assert (quota["remaining"], quota["grant_remaining"]) == ("0", "15")
    [shown] = quota["grants"]
    assert (shown["grant_id"], shown["remaining"], shown["expires_at"], shown["status"]) == (
        grant["grant_id"],
        "15",
        expires,
        "active",
    )
