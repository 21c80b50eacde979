"""Entity-scoped portal tokens and cross-origin reads, against moto: an entity's token is allowed its own
entity, that entity's limits and the usage series (answered for that entity only), and refused its
siblings and every tenant-wide route, by the authorizer's policy and again by the handlers; a token's
answers carry Access-Control-Allow-Origin only for the origins it was minted for."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError as PydanticValidationError

from billing_platform.api.cors import with_cors
from billing_platform.auth.caller import Actor
from billing_platform.entitlements.service import EntitlementService
from billing_platform.portal.models import MintPortalToken
from billing_platform.portal.schemas import MintPortalTokenIn
from billing_platform.portal.service import PortalTokenService
from tests.factories.apigw import api_event
from tests.factories.authorizer import authorizer_event, bearer, gateway_call, method_arn, policy_allows
from tests.factories.handlers import load_handler
from tests.factories.lambda_context import LambdaContext

OPERATOR = Actor("operator:me", "req-1")
SITE = "https://app.example.com"


@pytest.fixture
def tokens(moto_aws: dict[str, str]) -> PortalTokenService:
    return PortalTokenService()


def _policy(secret: str) -> dict[str, Any]:
    event = authorizer_event("GET", "/v1/entities/user-7", authorization=bearer(secret))
    policy: dict[str, Any] = load_handler("authorizer").handler(event, LambdaContext())
    return policy


def test_an_entity_token_is_allowed_its_entity_its_limits_and_the_usage_series_only(
    tokens: PortalTokenService,
) -> None:
    created = tokens.mint(MintPortalToken("t_a", entity_id="user-7"), actor=OPERATOR)
    policy = _policy(created.secret)
    assert policy["context"]["entity_id"] == "user-7"
    for path in ("/v1/entities/user-7", "/v1/entities/user-7/limits", "/v1/tenants/t_a/usage/series"):
        assert policy_allows(policy, method_arn("GET", path)), path
    refused = [
        ("GET", "/v1/entities/user-8"),
        ("GET", "/v1/entities/user-8/limits"),
        ("GET", "/v1/entities"),
        ("GET", "/v1/tenants/t_a/entities/user-7"),
        ("GET", "/v1/tenants/t_b/usage/series"),
        ("GET", "/v1/tenants/t_a/entitlements"),
        ("GET", "/v1/tenants/t_a/usage"),
        ("GET", "/v1/tenants/t_a/spend-cap"),
        ("GET", "/v1/tenants/t_a/cost"),
        ("PUT", "/v1/entities/user-7/limits/tokens"),
        ("PATCH", "/v1/entities/user-7"),
    ]
    for method, path in refused:
        assert not policy_allows(policy, method_arn(method, path)), (method, path)


def test_a_tenant_token_is_not_allowed_the_entity_routes(tokens: PortalTokenService) -> None:
    created = tokens.mint(MintPortalToken("t_a"), actor=OPERATOR)
    policy = _policy(created.secret)
    assert policy_allows(policy, method_arn("GET", "/v1/tenants/t_a/usage/series"))
    assert not policy_allows(policy, method_arn("GET", "/v1/entities/user-7"))


def _portal(entity_id: str | None) -> dict[str, str]:
    context = {"principal_type": "portal", "tenant_id": "t_a", "token_id": "ptk_0", "principalId": "ptk_0"}
    return {**context, "entity_id": entity_id} if entity_id else context


@pytest.mark.parametrize("path", ["/v1/entities/user-8", "/v1/entities/user-8/limits", "/v1/entities"])
def test_the_entities_handler_refuses_a_sibling_even_past_the_policy(moto_aws: dict[str, str], path: str) -> None:
    handler = load_handler("entities").handler
    answer = handler(api_event("GET", path, authorizer=_portal("user-7")), LambdaContext())
    assert answer["statusCode"] == 403, answer
    assert json.loads(answer["body"])["code"] == "forbidden"


def test_the_entities_handler_lets_an_entity_token_read_its_own_entity(moto_aws: dict[str, str]) -> None:
    now = datetime.now(UTC)
    EntitlementService().apply_plan(
        "t_a", "free", period_start=now - timedelta(days=1), period_end=now + timedelta(days=29)
    )
    handler = load_handler("entities").handler
    operator = {"principal_type": "operator", "principalId": "ops"}
    body = {"id": "user-7", "kind": "user", "name": "Seven"}
    created = handler(api_event("POST", "/v1/tenants/t_a/entities", body, authorizer=operator), LambdaContext())
    assert created["statusCode"] == 201, created
    answer = handler(api_event("GET", "/v1/entities/user-7", authorizer=_portal("user-7")), LambdaContext())
    assert answer["statusCode"] == 200, answer
    assert json.loads(answer["body"])["name"] == "Seven"
    limits = handler(api_event("GET", "/v1/entities/user-7/limits", authorizer=_portal("user-7")), LambdaContext())
    assert (limits["statusCode"], json.loads(limits["body"])) == (200, {"items": []})
    # A tenant-wide portal token is not an entity's: refused there too.
    assert (
        handler(api_event("GET", "/v1/entities/user-7", authorizer=_portal(None)), LambdaContext())["statusCode"] == 403
    )


def test_an_entity_tokens_usage_series_is_its_own_and_grouped_by_entity_only(moto_aws: dict[str, str]) -> None:
    handler = load_handler("usage_query").handler
    query = {"resource_type": "tokens", "start": "2026-12-01T00:00:00Z", "end": "2026-12-03T00:00:00Z"}
    answer = handler(
        api_event("GET", "/v1/tenants/t_a/usage/series", query=query, authorizer=_portal("user-7")), LambdaContext()
    )
    assert answer["statusCode"] == 200, answer
    body = json.loads(answer["body"])
    assert (body["group_by"], body["total"], body["dimensions"]) == ("entity", "0", ["model", "region"])
    by_model = {**query, "group_by": "model"}
    refused = handler(
        api_event("GET", "/v1/tenants/t_a/usage/series", query=by_model, authorizer=_portal("user-7")), LambdaContext()
    )
    assert refused["statusCode"] == 422, refused


def test_a_tokens_answers_are_readable_from_its_allowed_origins_only(tokens: PortalTokenService) -> None:
    created = tokens.mint(MintPortalToken("t_a", allowed_origins=(SITE,)), actor=OPERATOR)
    entitlements = load_handler("entitlements").handler
    authorizer = load_handler("authorizer").handler

    def call(origin: str | None, query: dict[str, str] | None = None) -> dict[str, Any]:
        return gateway_call(
            "GET",
            "/v1/tenants/t_a/events",
            handler=entitlements,
            authorizer=authorizer,
            authorization=bearer(created.secret),
            origin=origin,
            query=query,
        )

    def allow_origin(answer: dict[str, Any]) -> str | None:
        headers = {k.lower(): v for k, v in (answer.get("headers") or {}).items()}
        multi = {k.lower(): v[-1] for k, v in (answer.get("multiValueHeaders") or {}).items()}
        return {**headers, **multi}.get("access-control-allow-origin")

    allowed = call(SITE)
    assert (allowed["statusCode"], allow_origin(allowed)) == (200, SITE)
    for origin in ("https://evil.example.com", "http://app.example.com", None):
        answer = call(origin)
        assert answer["statusCode"] == 200
        assert allow_origin(answer) is None, origin
    # A refusal by the handler is readable by the allowed page too (it can tell it from a network failure).
    refused = call(SITE, {"limit": "0"})
    assert (refused["statusCode"], allow_origin(refused)) == (422, SITE)


@pytest.mark.parametrize(
    "origins",
    [
        ["http://app.example.com"],
        ["https://app.example.com/"],
        ["https://app.example.com/path"],
        ["*"],
        ["https://*.example.com"],
        ["null"],
        [f"https://a{i}.example.com" for i in range(6)],
    ],
)
def test_a_mint_refuses_origins_that_are_not_exact_https_origins(origins: list[str]) -> None:
    with pytest.raises(PydanticValidationError):
        MintPortalTokenIn(ttl_seconds=600, allowed_origins=origins)


def test_local_http_origins_and_ports_are_accepted() -> None:
    body = MintPortalTokenIn(ttl_seconds=600, allowed_origins=["http://127.0.0.1:5173", "https://app.example.com:8443"])
    assert body.allowed_origins == ["http://127.0.0.1:5173", "https://app.example.com:8443"]


def test_cors_headers_go_into_the_map_the_response_uses() -> None:
    event = {"headers": {"origin": SITE}, "requestContext": {"authorizer": {"allowed_origins": f"{SITE} https://b.io"}}}
    multi = with_cors(event, {"statusCode": 200, "multiValueHeaders": {"Content-Type": ["application/json"]}})
    assert multi["multiValueHeaders"]["Access-Control-Allow-Origin"] == [SITE]
    single = with_cors(event, {"statusCode": 200, "headers": {}})
    assert single["headers"] == {"Access-Control-Allow-Origin": SITE, "Vary": "Origin"}
    untouched = {"statusCode": 200, "headers": {}}
    assert with_cors({**event, "requestContext": {}}, untouched) == untouched


def test_a_minted_tokens_allowed_origins_are_stored_and_audited(tokens: PortalTokenService) -> None:
    created = tokens.mint(MintPortalToken("t_a", timedelta(minutes=5), allowed_origins=(SITE,)), actor=OPERATOR)
    assert tokens.list("t_a").tokens[0].allowed_origins == (SITE,)
    assert created.token.audit_view(created.token.created_at)["allowed_origins"] == [SITE]
