"""Abuse limits: 413 for oversized bodies (at the local gateway, at the HTTP server before the body is
read, and inside every API function through create_app, since a deployed API Gateway lets up to 10 MB
through), 429 from stage throttling (the local gateway's token bucket) and from DynamoDB throttling that
outlived boto3's retries; each with a clear JSON body and no write."""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from billing_platform import resources
from billing_platform.auth.repository import ApiKeyRepository
from billing_platform.auth.service import ApiKeyService
from billing_platform.resources import Auth
from local_stack.gateway import Gateway, HttpRequest, TokenBucket
from tests.factories.apigw import api_event
from tests.factories.handlers import load_handler
from tests.factories.lambda_context import LambdaContext
from tests.security.harness import ROUTE_IDS, TENANT_A, Credential, SecurityStack, plan_request, route_by_id

LIMIT = resources.MAX_REQUEST_BODY_BYTES
BODY_ROUTES = [rid for rid in ROUTE_IDS if route_by_id(rid)[0].method in ("POST", "PATCH", "PUT")]
API_FUNCTIONS = sorted({fn.name for _route, fn in resources.routes()})


def _oversized_json(size: int) -> bytes:
    # Valid JSON, so the refusal is about size and nothing else.
    padding = size - len(b'{"tenant_id": "t", "pad": ""}')
    return json.dumps({"tenant_id": "t", "pad": "x" * padding}).encode()


def _credential_for(auth: Auth) -> Credential:
    return {Auth.OPERATOR: Credential.OPERATOR, Auth.TENANT: Credential.OWN, Auth.PUBLIC: Credential.NONE}[auth]


def _assert_clear_error(body: bytes, code: str) -> dict[str, Any]:
    parsed = json.loads(body)
    assert parsed["code"] == code, parsed
    assert isinstance(parsed["message"], str), parsed
    assert parsed["message"], parsed
    return dict(parsed)


@pytest.mark.xdist_group("security_stack")
@pytest.mark.parametrize("rid", BODY_ROUTES)
def test_oversized_body_is_413_at_the_gateway_and_changes_nothing(security_stack: SecurityStack, rid: str) -> None:
    route, _fn = route_by_id(rid)
    planned = plan_request(route, {}, security_stack.context())
    before = security_stack.snapshot()
    response = security_stack.call(
        route.method, planned.target, raw=_oversized_json(LIMIT + 1), credential=_credential_for(route.auth)
    )
    assert response.status == 413
    _assert_clear_error(response.body, "payload_too_large")
    assert not before.diff(security_stack.snapshot())


@pytest.mark.xdist_group("security_stack")
def test_http_server_refuses_a_huge_body_before_reading_it(security_stack: SecurityStack) -> None:
    """Content-Length above API Gateway's 10 MB: answered 413 and closed without reading the body."""
    port = security_stack.stack.server.port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("POST", "/v1/usage")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Authorization", security_stack.headers[Credential.OWN] or "")
        conn.putheader("Content-Length", str(11 * 1024 * 1024))
        conn.endheaders()
        conn.send(b'{"records": [')  # the rest never comes
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == 413
    _assert_clear_error(body, "payload_too_large")


@pytest.mark.xdist_group("security_stack")
def test_http_body_over_the_api_limit_is_413_over_http(security_stack: SecurityStack) -> None:
    port = security_stack.stack.server.port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(
            "POST",
            "/v1/entitlements/consume",
            body=_oversized_json(LIMIT + 10),
            headers={"Content-Type": "application/json", "Authorization": security_stack.headers[Credential.OWN] or ""},
        )
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == 413
    _assert_clear_error(body, "payload_too_large")


@pytest.mark.xdist_group("security_stack")
def test_stage_throttling_answers_429_until_tokens_refill(security_stack: SecurityStack) -> None:
    """The local gateway's token bucket (API Gateway's stage throttling), with a controllable clock."""
    now = [0.0]
    gateway = Gateway(
        security_stack.stack.runtime.invoke,
        operator_token=security_stack.stack.operator_token,
        authorize=lambda event: security_stack.stack.runtime.invoke(resources.AUTHORIZER.name, event),
        throttle=TokenBucket(rate=1, burst=3, clock=lambda: now[0]),
    )
    headers = [("Authorization", security_stack.headers[Credential.OPERATOR] or "")]
    target = f"/v1/tenants/{TENANT_A}/api-keys"

    def call() -> Any:
        return gateway.handle(HttpRequest("GET", target, headers=list(headers)))

    assert [call().status for _ in range(3)] == [200, 200, 200]
    throttled = call()
    assert throttled.status == 429
    _assert_clear_error(throttled.body, "rate_limited")
    now[0] += 1.0  # one token back
    assert call().status == 200
    assert call().status == 429


# ---------------------------------------------------------------------------------------------- in the function


@pytest.mark.parametrize("function", API_FUNCTIONS)
@pytest.mark.parametrize("base64_body", [False, True], ids=["text", "base64"])
def test_every_api_function_refuses_an_oversized_body_with_413(
    moto_aws: dict[str, str], function: str, base64_body: bool
) -> None:
    """Deployed, API Gateway passes bodies up to 10 MB: each function must refuse what is over the
    platform limit itself (create_app), before parsing or validating it."""
    route = next(r for r, fn in resources.routes() if fn.name == function)
    module = load_handler(function)
    path = route.path.replace("{tenant_id}", TENANT_A).replace("{", "").replace("}", "")
    event = api_event(
        route.method,
        path,
        raw_body=_oversized_json(LIMIT + 1).decode(),
        base64_body=base64_body,
        tenant_id=TENANT_A if route.auth is Auth.TENANT else None,
        operator=route.auth is Auth.OPERATOR,
    )
    response = module.handler(event, LambdaContext())
    assert response["statusCode"] == 413, response
    _assert_clear_error(response["body"].encode(), "payload_too_large")


def test_dynamodb_throttling_after_retries_is_a_429_with_retry_after(
    moto_aws: dict[str, str],
) -> None:
    module = load_handler("api_keys")

    class Throttled:
        def __getattr__(self, name: str) -> Any:
            def fail(**_kwargs: Any) -> Any:
                raise ClientError(
                    {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, name
                )

            return fail

    module.keys.use(ApiKeyService(repository=ApiKeyRepository(client=Throttled())))
    response = module.handler(api_event("GET", f"/v1/tenants/{TENANT_A}/api-keys", operator=True), LambdaContext())
    assert response["statusCode"] == 429
    headers = {k.lower(): v for k, v in (response.get("multiValueHeaders") or {}).items()}
    headers.update({k.lower(): [v] for k, v in (response.get("headers") or {}).items()})
    assert headers.get("retry-after") == ["1"]
    _assert_clear_error(response["body"].encode(), "rate_limited")
