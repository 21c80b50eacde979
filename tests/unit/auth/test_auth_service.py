"""API keys and the Lambda authorizer against moto: keys exist only as hashes, are shown once, can be
revoked and expire, refresh last-used at most once a minute, and every mutation commits with its audit
entry. The authorizer handler turns a key into a policy for the tenant routes, or a 401."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from billing_platform import resources
from billing_platform.auth.authorizer import tenant_route_resources
from billing_platform.auth.caller import Actor
from billing_platform.auth.keys import hash_key
from billing_platform.auth.service import ApiKeyService
from billing_platform.errors import NotFoundError, ValidationError
from tests.factories.authorizer import authorizer_event, bearer, method_arn, policy_allows
from tests.factories.handlers import load_handler
from tests.factories.lambda_context import LambdaContext

ME = Actor("operator:me")

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _scan(table: str) -> list[dict[str, Any]]:
    return boto3.client("dynamodb", region_name="us-east-1").scan(TableName=table)["Items"]


@pytest.fixture
def keys(moto_aws: dict[str, str]) -> ApiKeyService:
    return ApiKeyService()


@pytest.fixture
def billing_table(moto_aws: dict[str, str]) -> str:
    return moto_aws[resources.BILLING_TABLE.env_var]


def test_the_key_is_returned_once_and_only_its_hash_is_stored(keys: ApiKeyService, billing_table: str) -> None:
    created = keys.create("t_a", name="ci", actor=Actor("operator:me", "req-1"), now=NOW)
    stored = json.dumps(_scan(billing_table))
    assert created.secret not in stored
    assert created.secret.split("_", 3)[3] not in stored  # not even the random tail (which may itself hold "_")
    assert f"APIKEY#{hash_key(created.secret)}" in stored
    listed = keys.list("t_a").keys
    assert [k.key_id for k in listed] == [created.key.key_id]
    assert created.secret not in json.dumps([k.to_dict() for k in listed])
    assert "secret" not in repr(created)


def test_creation_and_revocation_each_commit_one_audit_entry(keys: ApiKeyService, billing_table: str) -> None:
    created = keys.create("t_a", name="ci", actor=Actor("operator:me", "req-1"), now=NOW)
    keys.revoke("t_a", created.key.key_id, actor=Actor("operator:me", "req-2"), now=NOW)
    keys.revoke("t_a", created.key.key_id, actor=Actor("operator:me", "req-3"), now=NOW)  # no-op
    audit = [i for i in _scan(billing_table) if i["pk"]["S"] == "AUDIT#t_a"]
    assert sorted((i["action"]["S"], i["request_id"]["S"]) for i in audit) == [
        ("api_key.created", "req-1"),
        ("api_key.revoked", "req-2"),
    ]
    revoked = next(i for i in audit if i["action"]["S"] == "api_key.revoked")
    assert json.loads(revoked["before"]["S"])["status"] == "active"
    assert json.loads(revoked["after"]["S"])["status"] == "revoked"
    assert created.secret not in json.dumps(audit)


def test_authenticate_accepts_only_live_well_formed_keys(keys: ApiKeyService) -> None:
    live = keys.create("t_a", name="live", actor=ME, now=NOW)
    expiring = keys.create("t_a", name="exp", actor=ME, expires_at=NOW + timedelta(hours=1), now=NOW)
    revoked = keys.create("t_a", name="rev", actor=ME, now=NOW)
    keys.revoke("t_a", revoked.key.key_id, actor=ME, now=NOW)
    assert keys.authenticate(live.secret, now=NOW) is not None
    assert keys.authenticate(expiring.secret, now=NOW + timedelta(minutes=59)) is not None
    assert keys.authenticate(expiring.secret, now=NOW + timedelta(hours=1)) is None
    assert keys.authenticate(revoked.secret, now=NOW) is None
    assert keys.authenticate(live.secret[:-1] + ("A" if live.secret[-1] != "A" else "B"), now=NOW) is None
    assert keys.authenticate("not a key", now=NOW) is None


def test_last_used_is_refreshed_at_most_once_a_minute(keys: ApiKeyService) -> None:
    created = keys.create("t_a", name="ci", actor=ME, now=NOW)
    writes: list[bool] = []
    real = keys.repository.touch_last_used

    def spy(key_hash: str, now: datetime) -> bool:
        writes.append(real(key_hash, now))
        return writes[-1]

    keys.repository.touch_last_used = spy  # type: ignore[method-assign]
    for seconds in (0, 30, 59, 61, 90):
        keys.authenticate(created.secret, now=NOW + timedelta(seconds=seconds))
    assert writes == [True, True]  # at 0 s and at 61 s; the calls in between read a fresh value
    assert keys.list("t_a").keys[0].last_used_at == NOW + timedelta(seconds=61)


def test_a_key_cannot_be_revoked_through_another_tenant(keys: ApiKeyService, billing_table: str) -> None:
    created = keys.create("t_a", name="ci", actor=ME, now=NOW)
    before = _scan(billing_table)
    with pytest.raises(NotFoundError):
        keys.revoke("t_b", created.key.key_id, actor=ME, now=NOW)
    assert _scan(billing_table) == before
    assert keys.authenticate(created.secret, now=NOW) is not None


def test_expiry_must_be_future_and_timezone_aware(keys: ApiKeyService, billing_table: str) -> None:
    with pytest.raises(ValidationError):
        keys.create("t_a", name="x", actor=ME, expires_at=NOW - timedelta(seconds=1), now=NOW)
    with pytest.raises(ValidationError):
        keys.create("t_a", name="x", actor=ME, expires_at=datetime(2030, 1, 1), now=NOW)
    assert _scan(billing_table) == []


def test_authorizer_handler_allows_every_tenant_route_for_a_live_key_and_401s_the_rest(
    keys: ApiKeyService, capfd: pytest.CaptureFixture[str]
) -> None:
    live = keys.create("t_a", name="live", actor=ME)
    revoked = keys.create("t_a", name="rev", actor=ME)
    keys.revoke("t_a", revoked.key.key_id, actor=ME)
    handler = load_handler("authorizer").handler

    policy = handler(
        authorizer_event("GET", "/v1/tenants/t_a/usage", authorization=bearer(live.secret)), LambdaContext()
    )
    assert policy["context"]["tenant_id"] == "t_a"
    assert policy["principalId"] == live.key.key_id
    for method, resource in tenant_route_resources("use"):
        assert policy_allows(policy, method_arn(method, resource.replace("*", "t_a")))
    assert not policy_allows(policy, method_arn("GET", "/v1/usage/top"))  # an operator route
    assert (policy["context"]["scope"], policy["context"]["entity_id"]) == ("use", "")
    assert not policy_allows(policy, method_arn("POST", "/v1/entities"))  # an admin route

    admin = keys.create("t_a", name="admin", actor=ME, scope="admin")
    admin_policy = handler(
        authorizer_event("POST", "/v1/entities", authorization=bearer(admin.secret)), LambdaContext()
    )
    assert admin_policy["context"]["scope"] == "admin"
    for method, resource in tenant_route_resources("admin"):
        assert policy_allows(admin_policy, method_arn(method, resource.replace("*", "t_a")))

    for authorization in (bearer(revoked.secret), None, "Basic abc", bearer("bk_test_0123456789abcdef_" + "x" * 43)):
        with pytest.raises(Exception, match=r"^Unauthorized$"):
            handler(authorizer_event("POST", "/v1/usage", authorization=authorization), LambdaContext())
    out = capfd.readouterr()
    assert live.secret not in out.out + out.err
    assert revoked.secret not in out.out + out.err


def test_authorizer_allows_even_when_its_child_logger_has_no_parent(
    keys: ApiKeyService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The layer's child logger is named after the service at import time; when the parent of that name
    was never created (service renamed between import and use, as in one test process), Powertools
    refuses append_keys. Logging must never turn a valid key into a 500."""
    from aws_lambda_powertools import Logger

    import billing_platform.auth.authorizer as authorizer_module
    from billing_platform.auth.authorizer import TenantKeyAuthorizer

    monkeypatch.setattr(authorizer_module, "logger", Logger(service="never-initialised-parent", child=True))
    live = keys.create("t_a", name="live", actor=ME)
    from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
        APIGatewayAuthorizerRequestEvent,
    )

    event = APIGatewayAuthorizerRequestEvent(authorizer_event("POST", "/v1/usage", authorization=bearer(live.secret)))
    policy = TenantKeyAuthorizer(service=keys).authorize(event)
    assert policy["context"]["tenant_id"] == "t_a"


@pytest.mark.parametrize("name", ["Authorization", "authorization", "AUTHORIZATION"])
def test_authorizer_reads_the_header_whatever_its_case(keys: ApiKeyService, name: str) -> None:
    """HTTP/2 clients send lower-case header names; API Gateway passes them on as sent."""
    live = keys.create("t_a", name="live", actor=ME)
    event = authorizer_event("POST", "/v1/usage", headers={name: bearer(live.secret)})
    policy = load_handler("authorizer").handler(event, LambdaContext())
    assert policy["context"]["tenant_id"] == "t_a"
