"""Key format, hashing and the authorizer's pure parts (no AWS)."""

from __future__ import annotations

import re

import pytest

from billing_platform import resources
from billing_platform.auth.authorizer import bearer_token, operator_token_matches, tenant_route_resources
from billing_platform.auth.caller import Caller, PrincipalType, caller_from_request_context
from billing_platform.auth.keys import generate_key, hash_key, key_id_of, usage_identifier_key
from billing_platform.errors import AuthenticationError, TenantAccessDenied
from billing_platform.settings import Settings


def test_generated_key_is_prefixed_carries_its_id_and_256_random_bits() -> None:
    key_id, key = generate_key(live=False)
    assert key.startswith("bk_test_")
    assert key_id_of(key) == key_id
    assert re.fullmatch(r"key_[0-9a-f]{16}", key_id)
    assert key[len("bk_test_") + 16] == "_"
    assert len(key[len("bk_test_") + 17 :]) == 43  # token_urlsafe(32): 32 bytes = 256 bits
    assert generate_key(live=True)[1].startswith("bk_live_")


def test_keys_are_unique_and_only_their_sha256_is_derived() -> None:
    keys = {generate_key(live=False)[1] for _ in range(500)}
    assert len(keys) == 500
    key = next(iter(keys))
    digest = hash_key(key)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert key not in digest
    assert digest == hash_key(key)


@pytest.mark.parametrize(
    "presented",
    ["", "bk_test_", "sk_test_fake", "bk_prod_0123456789abcdef_" + "a" * 43, "bk_test_0123456789abcdef_" + "a" * 42],
)
def test_strings_that_are_not_platform_keys_have_no_key_id(presented: str) -> None:
    assert key_id_of(presented) is None


def test_usage_identifier_is_per_tenant_long_enough_for_api_gateway_and_not_the_key() -> None:
    a, b = usage_identifier_key("t_a"), usage_identifier_key("t_b")
    assert a != b
    assert a == usage_identifier_key("t_a")
    assert len(a) >= 20  # API Gateway API key values need at least 20 characters


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer abc.def", "abc.def"),
        ("bearer   abc", "abc"),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer", None),
        ("Bearer a b", None),
        ("Bearer " + "x" * 5000, None),
    ],
)
def test_bearer_token_parsing(header: str, expected: str | None) -> None:
    assert bearer_token({"Authorization": header}) == expected


def test_bearer_token_absent() -> None:
    assert bearer_token({}) is None
    assert bearer_token(None) is None


def test_policy_resources_cover_exactly_the_tenant_routes() -> None:
    allowed = tenant_route_resources()
    tenant_routes = [r for r, _ in resources.routes() if r.auth is resources.Auth.TENANT]
    assert len(allowed) == len(tenant_routes)
    assert ("GET", "/v1/tenants/*/entitlements") in allowed
    assert all("{" not in path for _, path in allowed)
    operator_paths = {r.path for r, _ in resources.routes() if r.auth is resources.Auth.OPERATOR}
    assert not any(path in operator_paths for _, path in allowed)


def test_operator_token_compare_is_off_in_production_and_without_a_token() -> None:
    token = "op-" + "fake" * 4
    assert operator_token_matches(token, Settings(operator_token=token, environment="development"))
    assert not operator_token_matches(token + "x", Settings(operator_token=token, environment="development"))
    assert not operator_token_matches(token, Settings(operator_token=token, environment="production"))
    assert not operator_token_matches(token, Settings(environment="development"))
    assert not operator_token_matches(None, Settings(operator_token=token))


def test_caller_from_authorizer_context_is_the_key_and_its_tenant() -> None:
    caller = caller_from_request_context(
        {"authorizer": {"principalId": "key_1", "principal_type": "tenant", "tenant_id": "t_a", "key_id": "key_1"}}
    )
    assert caller == Caller(PrincipalType.TENANT, "key_1", "t_a")
    caller.require_tenant("t_a")
    with pytest.raises(TenantAccessDenied):
        caller.require_tenant("t_b")
    with pytest.raises(TenantAccessDenied):
        caller.require_operator()
    with pytest.raises(AuthenticationError):
        caller_from_request_context({"authorizer": {"principal_type": "tenant"}})
    with pytest.raises(AuthenticationError):
        caller_from_request_context({})


def test_require_scope_lets_admin_keys_and_operators_through_and_refuses_use_keys() -> None:
    from billing_platform.auth.caller import Caller, PrincipalType, caller_from_request_context, require_scope
    from billing_platform.errors import TenantAccessDenied

    admin = caller_from_request_context(
        {"authorizer": {"principal_type": "tenant", "tenant_id": "t1", "principalId": "key_a", "scope": "admin"}}
    )
    use = caller_from_request_context({"authorizer": {"principal_type": "tenant", "tenant_id": "t1", "scope": "x"}})
    assert (admin.scope, use.scope) == ("admin", "use")  # anything but exactly "admin" is a use key
    require_scope(admin, "admin")
    require_scope(admin, "use")
    require_scope(use, "use")
    require_scope(Caller(PrincipalType.OPERATOR, "ops"), "admin")
    with pytest.raises(TenantAccessDenied):
        require_scope(use, "admin")
