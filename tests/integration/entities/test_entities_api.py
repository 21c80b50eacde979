"""The entities API over the real handler on DynamoDB Local: operators and a tenant's admin key create, read,
change and remove entities, limits and key bindings (each change audited); bad input is a 422 that writes
nothing; a `use` key and other tenants are refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from billing_platform import resources
from billing_platform.auth.caller import Actor
from billing_platform.auth.service import ApiKeyService
from billing_platform.entitlements.service import EntitlementService
from tests.factories.apigw import api_event, json_body
from tests.factories.handlers import load_handler
from tests.factories.lambda_context import LambdaContext

T = "t_org"
OPS = f"/v1/tenants/{T}"


@pytest.fixture
def handler(ddb_local_tables: dict[str, str]) -> Any:
    now = datetime.now(UTC)
    EntitlementService().apply_plan(
        T, "free", period_start=now - timedelta(days=1), period_end=now + timedelta(days=29)
    )
    EntitlementService().apply_plan(
        "t_short", "free", period_start=now - timedelta(hours=1), period_end=now + timedelta(hours=23)
    )
    return load_handler("entities")


def call(handler: Any, method: str, path: str, body: Any = None, **kwargs: Any) -> dict[str, Any]:
    return dict(handler.handler(api_event(method, path, body, **kwargs), LambdaContext()))


def admin(tenant_id: str = T, scope: str = "admin") -> dict[str, Any]:
    return {
        "principalId": "key_00000000000000aa",
        "principal_type": "tenant",
        "tenant_id": tenant_id,
        "key_id": "key_00000000000000aa",
        "scope": scope,
        "entity_id": "",
    }


def table_items(ddb_local_tables: dict[str, str], dynamodb_local: Any) -> list[dict[str, Any]]:
    client = dynamodb_local.client("dynamodb")
    return list(client.scan(TableName=ddb_local_tables[resources.BILLING_TABLE.env_var])["Items"])


def test_three_levels_with_limits_are_created_read_and_audited(handler: Any, ddb_local_tables: dict[str, str]) -> None:
    assert (
        call(handler, "POST", f"{OPS}/entities", {"id": "team-a", "kind": "team"}, operator=True)["statusCode"] == 201
    )
    user = call(handler, "POST", f"{OPS}/entities", {"id": "u1", "parent_id": "team-a"}, operator=True)
    assert user["statusCode"] == 201
    key = call(handler, "POST", "/v1/entities", {"id": "k1", "parent_id": "u1"}, authorizer=admin())
    assert key["statusCode"] == 201, key
    body = json_body(key)
    assert (body["depth"], body["ancestors"]) == (3, ["u1", "team-a"])
    team_limit = call(handler, "PUT", f"{OPS}/entities/team-a/limits/tokens", {"amount": "4000"}, operator=True)
    assert json_body(team_limit)["limit"] == "4000"
    share = call(
        handler,
        "PUT",
        "/v1/entities/u1/limits/tokens",
        {"kind": "share", "share_percent": "25", "windows": {"minute": "100"}},
        authorizer=admin(),
    )
    assert share["statusCode"] == 200, share
    assert (json_body(share)["limit"], json_body(share)["windows"]) == ("1000", {"minute": "100"})
    team = json_body(call(handler, "GET", f"{OPS}/entities/team-a", operator=True))
    assert (team["children"], team["limited_resources"]) == (1, ["tokens"])
    listed = json_body(call(handler, "GET", "/v1/entities", authorizer=admin()))["items"]
    assert sorted(e["id"] for e in listed) == ["k1", "team-a", "u1"]
    audit = json_body(call(load_handler("api_keys"), "GET", f"{OPS}/audit", operator=True))["items"]
    assert sorted(e["action"] for e in audit) == [
        "entity.created",
        "entity.created",
        "entity.created",
        "entity.limit_set",
        "entity.limit_set",
    ]
    assert any(e["actor"].startswith(f"tenant:{T}:key:") for e in audit)


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        (f"{OPS}/entities", {"id": "x", "parent_id": "nobody"}, "unknown_entity"),
        (f"{OPS}/entities", {"id": "loop", "parent_id": "loop"}, "entity_cycle"),
        (f"{OPS}/entities", {"id": "k2", "parent_id": "k1"}, "entity_too_deep"),
        (f"{OPS}/entities/u1/limits/tokens", {"kind": "share", "share_percent": "100.5"}, "validation_error"),
        (f"{OPS}/entities/u1/limits/tokens", {"amount": "5", "windows": {"month": "1"}}, "validation_error"),
        (f"{OPS}/entities/u1/limits/nope", {"amount": "5"}, "unknown_resource_type"),
        (f"{OPS}/entities/ghost/limits/tokens", {"amount": "5"}, "entity_not_found"),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(
    handler: Any, ddb_local_tables: dict[str, str], dynamodb_local: Any, path: str, body: Any, code: str
) -> None:
    for entity in ({"id": "team-a"}, {"id": "u1", "parent_id": "team-a"}, {"id": "k1", "parent_id": "u1"}):
        assert call(handler, "POST", f"{OPS}/entities", entity, operator=True)["statusCode"] == 201
    before = table_items(ddb_local_tables, dynamodb_local)
    response = call(handler, "PUT" if "/limits/" in path else "POST", path, body, operator=True)
    assert response["statusCode"] in (404, 422), response
    assert json_body(response)["code"] == code
    assert table_items(ddb_local_tables, dynamodb_local) == before


def test_a_window_not_shorter_than_the_period_is_refused(handler: Any) -> None:
    path = "/v1/tenants/t_short/entities"
    assert call(handler, "POST", path, {"id": "u"}, operator=True)["statusCode"] == 201
    refused = call(handler, "PUT", f"{path}/u/limits/tokens", {"amount": "9", "windows": {"day": "5"}}, operator=True)
    assert (refused["statusCode"], json_body(refused)["code"]) == (422, "window_too_long")
    ok = call(handler, "PUT", f"{path}/u/limits/tokens", {"amount": "9", "windows": {"hour": "5"}}, operator=True)
    assert ok["statusCode"] == 200


def test_a_use_key_and_other_tenants_are_refused(handler: Any) -> None:
    assert call(handler, "POST", "/v1/entities", {"id": "a"}, authorizer=admin(scope="use"))["statusCode"] == 403
    # Operator routes refuse every tenant key, admin or not: an admin key reaches its own tenant only.
    other = call(handler, "POST", "/v1/tenants/t_other/entities", {"id": "a"}, authorizer=admin())
    assert other["statusCode"] == 403
    assert call(handler, "POST", "/v1/entities", {"id": "a"}, authorizer=admin("t_short"))["statusCode"] == 201
    assert json_body(call(handler, "GET", "/v1/entities", authorizer=admin()))["items"] == []


def test_a_bound_key_counts_in_its_entity_which_cannot_be_deleted_until_unbound(handler: Any) -> None:
    created = ApiKeyService().create(T, name="worker", actor=Actor("operator:test"))
    key_id = created.key.key_id
    assert call(handler, "POST", f"{OPS}/entities", {"id": "u1"}, operator=True)["statusCode"] == 201
    bound = call(handler, "PUT", f"/v1/api-keys/{key_id}/entity", {"entity_id": "u1"}, authorizer=admin())
    assert json_body(bound)["entity_id"] == "u1"
    assert ApiKeyService().authenticate(created.secret).entity_id == "u1"  # type: ignore[union-attr]
    refused = call(handler, "DELETE", f"{OPS}/entities/u1", operator=True)
    assert (refused["statusCode"], json_body(refused)["code"]) == (409, "entity_in_use")
    unknown = call(handler, "PUT", f"/v1/api-keys/{key_id}/entity", {"entity_id": "ghost"}, authorizer=admin())
    assert (unknown["statusCode"], json_body(unknown)["code"]) == (422, "unknown_entity")
    foreign = call(handler, "PUT", f"/v1/api-keys/{key_id}/entity", {"entity_id": None}, authorizer=admin("t_short"))
    assert foreign["statusCode"] == 404
    unbound = call(handler, "PUT", f"{OPS}/api-keys/{key_id}/entity", {"entity_id": None}, operator=True)
    assert json_body(unbound)["entity_id"] is None
    assert call(handler, "DELETE", f"{OPS}/entities/u1", operator=True)["statusCode"] == 200
    assert call(handler, "GET", f"{OPS}/entities/u1", operator=True)["statusCode"] == 404


def test_an_admin_key_manages_its_own_webhook_endpoints(handler: Any) -> None:
    hooks = load_handler("webhook_endpoints")
    created = call(hooks, "POST", "/v1/webhook-endpoints", {"url": "https://hooks.example.com/x"}, authorizer=admin())
    assert created["statusCode"] == 201, created
    listed = json_body(call(hooks, "GET", f"{OPS}/webhook-endpoints", operator=True))["items"]
    assert [e["id"] for e in listed] == [json_body(created)["id"]]
    assert call(hooks, "GET", "/v1/webhook-endpoints", authorizer=admin(scope="use"))["statusCode"] == 403
    assert json_body(call(hooks, "GET", "/v1/webhook-endpoints", authorizer=admin("t_short")))["items"] == []
