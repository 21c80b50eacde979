"""Portal tokens against moto: shown once and stored only as a hash, 1 minute to 24 hours, revocable, each
mint and revocation audited; the authorizer turns a live token into a policy for its own tenant's GET
routes only, and a token never reaches a log line or the audit log."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from billing_platform import resources
from billing_platform.auth.caller import Actor, Caller, PrincipalType, require_portal_minter
from billing_platform.errors import NotFoundError, TenantAccessDenied, ValidationError
from billing_platform.portal.models import MintPortalToken, hash_token
from billing_platform.portal.service import PortalTokenService
from tests.factories.authorizer import authorizer_event, bearer, gateway_call, method_arn, policy_allows
from tests.factories.handlers import load_handler
from tests.factories.lambda_context import LambdaContext

OPERATOR = Actor("operator:me", "req-1")
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _scan(table: str) -> list[dict[str, Any]]:
    return boto3.client("dynamodb", region_name="us-east-1").scan(TableName=table)["Items"]


@pytest.fixture
def tokens(moto_aws: dict[str, str]) -> PortalTokenService:
    return PortalTokenService()


@pytest.fixture
def billing_table(moto_aws: dict[str, str]) -> str:
    return moto_aws[resources.BILLING_TABLE.env_var]


def test_a_minted_token_is_returned_once_and_only_its_hash_is_stored(
    tokens: PortalTokenService, billing_table: str
) -> None:
    created = tokens.mint(MintPortalToken("t_a", timedelta(hours=2), label="support"), actor=OPERATOR, now=NOW)
    stored = json.dumps(_scan(billing_table))
    assert created.secret not in stored
    assert created.secret.split("_", 2)[2] not in stored
    assert hash_token(created.secret) in stored
    assert created.token.expires_at == NOW + timedelta(hours=2)
    assert created.secret not in repr(created)
    assert [t.token_id for t in tokens.list("t_a").tokens] == [created.token.token_id]


@pytest.mark.parametrize("ttl", [timedelta(hours=24, seconds=1), timedelta(seconds=59), timedelta(0)])
def test_a_token_lives_between_a_minute_and_a_day(
    tokens: PortalTokenService, billing_table: str, ttl: timedelta
) -> None:
    with pytest.raises(ValidationError):
        tokens.mint(MintPortalToken("t_a", ttl), actor=OPERATOR, now=NOW)
    assert _scan(billing_table) == []


def test_mint_and_revoke_each_commit_one_audit_entry_without_the_token(
    tokens: PortalTokenService, billing_table: str
) -> None:
    created = tokens.mint(MintPortalToken("t_a", entity_id="user-7"), actor=OPERATOR, now=NOW)
    tokens.revoke("t_a", created.token.token_id, actor=Actor("operator:me", "req-2"), now=NOW)
    again = tokens.revoke("t_a", created.token.token_id, actor=Actor("operator:me", "req-3"), now=NOW)
    assert again.revoked_at == NOW
    audit = [i for i in _scan(billing_table) if i["pk"]["S"] == "AUDIT#t_a"]
    assert sorted((i["action"]["S"], i["request_id"]["S"]) for i in audit) == [
        ("portal_token.created", "req-1"),
        ("portal_token.revoked", "req-2"),
    ]
    assert all(created.secret not in json.dumps(i) for i in audit)
    created_entry = next(i for i in audit if i["action"]["S"] == "portal_token.created")
    assert json.loads(created_entry["after"]["S"])["entity_id"] == "user-7"


def test_another_tenants_token_cannot_be_revoked_through_this_tenant(tokens: PortalTokenService) -> None:
    created = tokens.mint(MintPortalToken("t_a"), actor=OPERATOR, now=NOW)
    with pytest.raises(NotFoundError):
        tokens.revoke("t_b", created.token.token_id, actor=OPERATOR, now=NOW)
    assert tokens.authenticate(created.secret, now=NOW) is not None


def test_authenticate_refuses_revoked_expired_tampered_and_malformed_tokens(tokens: PortalTokenService) -> None:
    live = tokens.mint(MintPortalToken("t_a", timedelta(hours=1)), actor=OPERATOR, now=NOW)
    assert tokens.authenticate(live.secret, now=NOW + timedelta(minutes=59)) == live.token
    assert tokens.authenticate(live.secret, now=NOW + timedelta(hours=1)) is None  # expired at its instant
    tampered = live.secret[:-1] + ("A" if live.secret[-1] != "A" else "B")
    assert tokens.authenticate(tampered, now=NOW) is None
    assert tokens.authenticate("bpt_nothex_short", now=NOW) is None
    tokens.revoke("t_a", live.token.token_id, actor=OPERATOR, now=NOW)
    assert tokens.authenticate(live.secret, now=NOW) is None


def test_the_operator_or_an_admin_key_of_the_tenant_may_mint() -> None:
    require_portal_minter(Caller(PrincipalType.OPERATOR, "ops"), "t_a")
    require_portal_minter(Caller(PrincipalType.TENANT, "key_1", "t_a", scope="admin"), "t_a")
    with pytest.raises(TenantAccessDenied):
        require_portal_minter(Caller(PrincipalType.TENANT, "key_1", "t_a", scope="admin"), "t_b")
    with pytest.raises(TenantAccessDenied):
        require_portal_minter(Caller(PrincipalType.TENANT, "key_1", "t_a"), "t_a")
    with pytest.raises(TenantAccessDenied):
        require_portal_minter(Caller(PrincipalType.PORTAL, "ptk_1", "t_a"), "t_a")


def _authorize(token: str, method: str, path: str) -> dict[str, Any]:
    handler = load_handler("authorizer").handler
    policy: dict[str, Any] = handler(authorizer_event(method, path, authorization=bearer(token)), LambdaContext())
    return policy


def test_the_authorizer_allows_a_portal_token_its_own_tenants_reads_only(
    tokens: PortalTokenService, caplog: pytest.LogCaptureFixture
) -> None:
    created = tokens.mint(MintPortalToken("t_a"), actor=OPERATOR)
    with caplog.at_level(logging.INFO):
        policy = _authorize(created.secret, "GET", "/v1/tenants/t_a/entitlements")
    assert policy["context"] == {"principal_type": "portal", "tenant_id": "t_a", "token_id": created.token.token_id}
    document = policy
    for path in ("entitlements", "usage", "reservations", "events"):
        assert policy_allows(document, method_arn("GET", f"/v1/tenants/t_a/{path}")), path
    refused = [
        ("GET", "/v1/tenants/t_b/entitlements"),
        ("GET", "/v1/tenants/t_a/grants"),
        ("GET", "/v1/entitlements/reservations/rsv_1"),
        ("POST", "/v1/entitlements/consume"),
        ("POST", "/v1/usage"),
        ("DELETE", "/v1/entitlements/reservations/rsv_1"),
        ("POST", "/v1/entitlements/reservations"),
    ]
    for method, path in refused:
        assert not policy_allows(document, method_arn(method, path)), (method, path)
    assert created.secret not in caplog.text
    assert created.secret.split("_", 2)[2] not in caplog.text


def test_an_entity_token_reads_no_tenant_wide_route(tokens: PortalTokenService) -> None:
    created = tokens.mint(MintPortalToken("t_a", entity_id="user-7"), actor=OPERATOR)
    policy = _authorize(created.secret, "GET", "/v1/tenants/t_a/entitlements")
    assert policy["context"]["entity_id"] == "user-7"
    assert not policy_allows(policy, method_arn("GET", "/v1/tenants/t_a/entitlements"))


def test_through_the_gateway_a_portal_token_reads_its_tenant_and_nothing_else(tokens: PortalTokenService) -> None:
    created = tokens.mint(MintPortalToken("t_a", timedelta(minutes=5)), actor=OPERATOR)
    authorizer = load_handler("authorizer").handler
    entitlements = load_handler("entitlements").handler
    auth = bearer(created.secret)

    def call(method: str, path: str, body: Any = None) -> dict[str, Any]:
        return gateway_call(method, path, body, handler=entitlements, authorizer=authorizer, authorization=auth)

    answer = call("GET", "/v1/tenants/t_a/events")
    assert answer["statusCode"] == 200, answer
    assert json.loads(answer["body"]) == {"tenant_id": "t_a", "items": []}
    assert call("GET", "/v1/tenants/t_b/events")["statusCode"] == 403
    consume = {"tenant_id": "t_a", "resource_type": "api_calls", "quantity": 1}
    assert call("POST", "/v1/entitlements/consume", consume)["statusCode"] == 403
    tokens.revoke("t_a", created.token.token_id, actor=OPERATOR)
    assert call("GET", "/v1/tenants/t_a/events")["statusCode"] == 401


def test_a_handler_refuses_a_portal_caller_on_a_write_even_past_the_policy(moto_aws: dict[str, str]) -> None:
    from tests.factories.apigw import api_event

    handler = load_handler("entitlements").handler
    portal = {"principal_type": "portal", "tenant_id": "t_a", "token_id": "ptk_0", "principalId": "ptk_0"}
    body = {"tenant_id": "t_a", "resource_type": "api_calls", "quantity": 1}
    answer = handler(api_event("POST", "/v1/entitlements/consume", body, authorizer=portal), LambdaContext())
    assert answer["statusCode"] == 403, answer
    assert json.loads(answer["body"])["code"] == "forbidden"
