"""The local API Gateway (local_stack.gateway) without sockets: HTTP request -> REST proxy event, proxy
response -> HTTP, and the stage's own answers (404/405, 413, 429, 401/403, 502) in API Gateway's order."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from billing_platform import resources
from local_stack.containers import FunctionThrottled, FunctionTimeout
from local_stack.gateway import (
    ACCOUNT,
    API_ID,
    STAGE,
    Gateway,
    HttpRequest,
    MalformedProxyResponse,
    RouteNotFound,
    RouteTable,
    TokenBucket,
    authorizer_context,
    from_proxy_response,
    method_arn,
    policy_allows,
    proxy_event,
)

OPERATOR_TOKEN = "op-token-for-tests"
NOW = datetime(2026, 11, 25, 12, 30, 15, tzinfo=UTC)


def request(
    method: str,
    target: str,
    *,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> HttpRequest:
    return HttpRequest(method, target, headers=headers or [("Host", "127.0.0.1:8765")], body=body)


def event_for(req: HttpRequest, **kwargs: Any) -> dict[str, Any]:
    return proxy_event(req, RouteTable().match(req.method, req.path), request_id="req-1", now=NOW, **kwargs)


class Recorder:
    """Stands in for the function runtime: records each invocation, answers with `response`."""

    def __init__(self, response: Any = None, error: Exception | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.response = response if response is not None else {"statusCode": 200, "body": "{}"}
        self.error = error

    def __call__(self, name: str, event: dict[str, Any]) -> Any:
        self.calls.append((name, event))
        if self.error is not None:
            raise self.error
        return self.response


def allow(tenant_id: str = "t_a", **context: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def authorize(event: dict[str, Any]) -> dict[str, Any]:
        return {
            "principalId": "key_1",
            "policyDocument": {
                "Version": "2012-10-17",
                "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": event["methodArn"]}],
            },
            "context": {"principal_type": "tenant", "tenant_id": tenant_id, **context},
        }

    return authorize


def gateway(invoke: Any, **kwargs: Any) -> Gateway:
    return Gateway(invoke, operator_token=OPERATOR_TOKEN, **kwargs)


def operator_headers(token: str = OPERATOR_TOKEN) -> list[tuple[str, str]]:
    return [("Host", "127.0.0.1:8765"), ("Authorization", f"Bearer {token}")]


# ------------------------------------------------------------------------------------------ HTTP -> event


def test_path_parameters_are_decoded_while_path_stays_encoded() -> None:
    event = event_for(request("GET", "/v1/tenants/t%2Fa%20b/entitlements"))
    assert event["path"] == "/v1/tenants/t%2Fa%20b/entitlements"
    assert event["pathParameters"] == {"tenant_id": "t/a b"}
    assert event["resource"] == "/v1/tenants/{tenant_id}/entitlements"
    assert event["requestContext"]["resourcePath"] == "/v1/tenants/{tenant_id}/entitlements"
    assert event["requestContext"]["path"] == f"/{STAGE}/v1/tenants/t%2Fa%20b/entitlements"


def test_a_route_without_parameters_has_none() -> None:
    event = event_for(request("GET", "/health"))
    assert event["pathParameters"] is None
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["body"] is None
    assert event["isBase64Encoded"] is False
    assert event["stageVariables"] is None


def test_repeated_headers_keep_the_last_value_and_all_values_in_the_multi_value_map() -> None:
    req = request(
        "GET",
        "/health",
        headers=[("Host", "h"), ("X-Trace", "one"), ("X-Trace", "two"), ("Accept", "application/json")],
    )
    event = event_for(req)
    assert event["headers"]["X-Trace"] == "two"
    assert event["multiValueHeaders"]["X-Trace"] == ["one", "two"]
    assert event["multiValueHeaders"]["Accept"] == ["application/json"]


def test_query_strings_are_decoded_repeated_keys_and_blank_values_kept() -> None:
    event = event_for(request("GET", "/v1/usage/top?resource=api%20calls&tag=a&tag=b&empty="))
    assert event["queryStringParameters"] == {"resource": "api calls", "tag": "b", "empty": ""}
    assert event["multiValueQueryStringParameters"] == {"resource": ["api calls"], "tag": ["a", "b"], "empty": [""]}
    assert event["path"] == "/v1/usage/top"


def test_a_text_body_arrives_as_text() -> None:
    body = json.dumps({"resource": "api_calls", "quantity": "1.5"}).encode()
    req = request("POST", "/v1/entitlements/check", headers=[("Content-Type", "application/json")], body=body)
    event = event_for(req)
    assert event["body"] == body.decode()
    assert event["isBase64Encoded"] is False


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/octet-stream", b"plain ascii but declared binary"),
        ("image/png", b"\x89PNG\r\n\x1a\n"),
        ("application/json", b"\xff\xfe not utf-8"),
    ],
    ids=["octet-stream", "image-wildcard", "not-utf8"],
)
def test_a_binary_body_arrives_base64_encoded(content_type: str, body: bytes) -> None:
    req = request("POST", "/v1/usage", headers=[("Content-Type", content_type)], body=body)
    event = event_for(req)
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body


def test_request_context_carries_what_api_gateway_sets() -> None:
    req = HttpRequest(
        "POST",
        "/v1/usage",
        headers=[("Host", "localhost:8765"), ("User-Agent", "curl/8")],
        body=b"{}",
        source_ip="192.0.2.7",
    )
    context = event_for(req)["requestContext"]
    assert context["requestId"] == "req-1"
    assert context["httpMethod"] == "POST"
    assert context["stage"] == STAGE
    assert context["apiId"] == API_ID
    assert context["accountId"] == ACCOUNT
    assert context["protocol"] == "HTTP/1.1"
    assert context["domainName"] == "localhost"
    assert context["requestTimeEpoch"] == int(NOW.timestamp() * 1000)
    assert context["requestTime"] == "25/Nov/2026:12:30:15 +0000"
    assert context["identity"]["sourceIp"] == "192.0.2.7"
    assert context["identity"]["userAgent"] == "curl/8"
    assert "authorizer" not in context


def test_authorizer_context_is_placed_in_the_request_context() -> None:
    authorizer = {"principal_type": "tenant", "tenant_id": "t_a", "principalId": "key_1", "integrationLatency": 3}
    event = event_for(request("POST", "/v1/usage", body=b"{}"), authorizer=authorizer)
    assert event["requestContext"]["authorizer"] == authorizer


# ------------------------------------------------------------------------------------------ response -> HTTP


def test_status_headers_and_body_come_back_as_http() -> None:
    response = from_proxy_response(
        {"statusCode": 201, "headers": {"Content-Type": "application/json", "X-Id": "1"}, "body": '{"ok": true}'}
    )
    assert response.status == 201
    assert response.header("X-Id") == "1"
    assert response.json() == {"ok": True}


def test_multi_value_headers_are_all_sent_and_win_over_the_single_map() -> None:
    response = from_proxy_response(
        {
            "statusCode": 200,
            "headers": {"Set-Cookie": "lost=1", "X-One": "1"},
            "multiValueHeaders": {"set-cookie": ["a=1", "b=2"]},
            "body": "",
        }
    )
    assert [v for k, v in response.headers if k.lower() == "set-cookie"] == ["a=1", "b=2"]
    assert response.header("X-One") == "1"


def test_a_base64_response_body_is_decoded() -> None:
    payload = bytes(range(256))
    response = from_proxy_response(
        {
            "statusCode": 200,
            "headers": {"Content-Type": "application/pdf"},
            "body": base64.b64encode(payload).decode(),
            "isBase64Encoded": True,
        }
    )
    assert response.body == payload
    assert response.header("Content-Type") == "application/pdf"


def test_a_missing_body_is_empty_and_json_is_the_default_content_type() -> None:
    response = from_proxy_response({"statusCode": 204})
    assert response.body == b""
    assert response.header("Content-Type") == "application/json"


@pytest.mark.parametrize(
    "result",
    [None, "ok", {"body": "{}"}, {"statusCode": "200"}, ["statusCode", 200]],
    ids=["none", "string", "no-status", "status-as-string", "list"],
)
def test_a_malformed_proxy_response_is_refused(result: Any) -> None:
    with pytest.raises(MalformedProxyResponse):
        from_proxy_response(result)


@pytest.mark.parametrize(
    "result",
    [{"body": "{}"}, {"statusCode": None}, "not a dict"],
    ids=["no-status", "null-status", "string"],
)
def test_a_malformed_proxy_response_becomes_502(result: Any) -> None:
    response = gateway(Recorder(response=result)).handle(request("GET", "/health"))
    assert response.status == 502
    assert response.json()["code"] == "bad_gateway"


def test_a_function_error_becomes_502_without_details() -> None:
    response = gateway(Recorder(error=RuntimeError("secret internals"))).handle(request("GET", "/health"))
    assert response.status == 502
    assert b"secret internals" not in response.body


def test_past_the_integration_timeout_the_answer_is_504_as_api_gateway_gives() -> None:
    timed_out = FunctionTimeout(resources.HEALTH.name, 29.0, integration=True)
    response = gateway(Recorder(error=timed_out)).handle(request("GET", "/health"))
    assert response.status == 504
    assert response.json() == {"code": "integration_timeout", "message": "Endpoint request timed out"}


def test_a_function_timing_out_before_the_integration_is_a_502_function_error() -> None:
    timed_out = FunctionTimeout(resources.HEALTH.name, 5.0, integration=False)
    response = gateway(Recorder(error=timed_out)).handle(request("GET", "/health"))
    assert response.status == 502
    assert response.json()["code"] == "bad_gateway"


def test_a_function_at_its_concurrency_for_too_long_is_throttled_429_with_retry_after() -> None:
    response = gateway(Recorder(error=FunctionThrottled("all busy"))).handle(request("GET", "/health"))
    assert response.status == 429
    assert response.header("Retry-After") == "1"


def test_a_throttled_authorizer_is_a_429_and_the_function_is_not_called() -> None:
    def throttled(event: dict[str, Any]) -> Any:
        raise FunctionThrottled("authorizer busy")

    invoke = Recorder()
    req = request("POST", "/v1/entitlements/check", headers=[("Authorization", "Bearer bk_live_x")], body=b"{}")
    response = gateway(invoke, authorize=throttled).handle(req)
    assert response.status == 429
    assert invoke.calls == []


def test_the_function_response_is_relayed() -> None:
    invoke = Recorder(response={"statusCode": 200, "headers": {"X-Fn": "health"}, "body": '{"status": "ok"}'})
    response = gateway(invoke).handle(request("GET", "/health"))
    assert response.status == 200
    assert response.json() == {"status": "ok"}
    assert response.header("X-Fn") == "health"
    ((name, event),) = invoke.calls
    assert name == resources.HEALTH.name
    assert "authorizer" not in event["requestContext"]


# ------------------------------------------------------------------------------------------ routing


def test_every_declared_route_reaches_its_function() -> None:
    table = RouteTable()
    for route, fn in resources.routes():
        concrete = route.path.replace("{", "x").replace("}", "")
        match = table.match(route.method, concrete)
        assert match.function.name == fn.name, (route.method, route.path)
        assert match.route == route


def test_literal_segments_win_over_parameters() -> None:
    # /v1/usage/top must not be read as a tenant-ish /v1/usage/{x}-style route.
    assert RouteTable().match("GET", "/v1/usage/top").function.name == resources.USAGE_QUERY.name


def test_unknown_route_is_404_json_and_invokes_nothing() -> None:
    invoke = Recorder()
    response = gateway(invoke).handle(request("GET", "/v1/nope"))
    assert response.status == 404
    assert response.header("Content-Type") == "application/json"
    assert response.json()["code"] == "not_found"
    assert invoke.calls == []


def test_known_path_with_another_method_is_405_with_allow() -> None:
    response = gateway(Recorder()).handle(request("PUT", "/v1/subscriptions/sub_1"))
    assert response.status == 405
    assert response.header("Allow") == "DELETE, GET, PATCH"


def test_a_parameter_never_spans_segments() -> None:
    with pytest.raises(RouteNotFound):
        RouteTable().match("GET", "/v1/tenants/a/b/entitlements")


# ------------------------------------------------------------------------------------------ limits


def test_a_body_over_the_limit_is_413_and_invokes_nothing() -> None:
    invoke = Recorder()
    gw = gateway(invoke, max_body_bytes=16, authorize=allow())
    headers = [("Authorization", "Bearer k")]
    assert gw.handle(request("POST", "/v1/usage", headers=headers, body=b"x" * 16)).status == 200
    response = gw.handle(request("POST", "/v1/usage", headers=headers, body=b"x" * 17))
    assert response.status == 413
    assert response.json()["code"] == "payload_too_large"
    assert len(invoke.calls) == 1


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_the_burst_then_refills_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.5  # one token at 2/s
    assert [bucket.take() for _ in range(2)] == [True, False]
    clock.now += 100  # never more than the burst is banked
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_throttled_requests_are_429_and_invoke_nothing() -> None:
    clock = FakeClock()
    invoke = Recorder()
    gw = gateway(invoke, throttle=TokenBucket(rate=1, burst=2, clock=clock))
    statuses = [gw.handle(request("GET", "/health")).status for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert len(invoke.calls) == 2
    clock.now += 1
    assert gw.handle(request("GET", "/health")).status == 200


def test_the_default_stage_throttle_is_the_deployed_one() -> None:
    gw = gateway(Recorder())
    assert gw._throttle.rate == resources.API_THROTTLE_RATE_LIMIT
    assert gw._throttle.burst == resources.API_THROTTLE_BURST_LIMIT


# ------------------------------------------------------------------------------------------ operator auth


def test_operator_route_without_credentials_is_401() -> None:
    invoke = Recorder()
    response = gateway(invoke).handle(request("GET", "/v1/usage/top"))
    assert response.status == 401
    assert invoke.calls == []


@pytest.mark.parametrize(
    "header",
    ["Bearer wrong-token", f"Basic {OPERATOR_TOKEN}", f"Bearer {OPERATOR_TOKEN}x", "Bearer"],
    ids=["wrong-token", "basic-scheme", "longer-token", "empty-token"],
)
def test_operator_route_with_a_wrong_token_is_403(header: str) -> None:
    invoke = Recorder()
    response = gateway(invoke).handle(
        request("GET", "/v1/usage/top", headers=[("Host", "h"), ("Authorization", header)])
    )
    assert response.status == 403
    assert invoke.calls == []


def test_operator_route_with_the_token_reaches_the_function_as_operator() -> None:
    invoke = Recorder()
    response = gateway(invoke).handle(request("GET", "/v1/usage/top", headers=operator_headers()))
    assert response.status == 200
    ((name, event),) = invoke.calls
    assert name == resources.USAGE_QUERY.name
    assert event["requestContext"]["authorizer"]["principal_type"] == "operator"


def test_a_tenant_key_does_not_open_an_operator_route() -> None:
    # Operator routes never consult the tenant authorizer, whatever it would answer.
    invoke = Recorder()
    response = gateway(invoke, authorize=allow()).handle(
        request("POST", "/v1/tenants/t_a/api-keys", headers=[("Authorization", "Bearer tenant-key")])
    )
    assert response.status == 403
    assert invoke.calls == []


# ------------------------------------------------------------------------------------------ tenant auth


def test_tenant_route_gets_the_authorizer_context_as_strings() -> None:
    invoke = Recorder()
    authorize_events: list[dict[str, Any]] = []

    def authorize(event: dict[str, Any]) -> dict[str, Any]:
        authorize_events.append(event)
        return allow(plan_limit=100, active=True)(event)

    response = gateway(invoke, authorize=authorize).handle(
        request("POST", "/v1/usage", headers=[("Authorization", "Bearer tk_1")], body=b"{}")
    )
    assert response.status == 200
    (auth_event,) = authorize_events
    assert auth_event["type"] == "REQUEST"
    assert auth_event["methodArn"] == method_arn("POST", "/v1/usage")
    assert auth_event["headers"]["Authorization"] == "Bearer tk_1"
    assert "authorizer" not in auth_event["requestContext"]
    assert "body" not in auth_event
    ((_, event),) = invoke.calls
    context = event["requestContext"]["authorizer"]
    assert context["tenant_id"] == "t_a"
    assert context["principalId"] == "key_1"
    assert context["plan_limit"] == "100"
    assert context["active"] == "true"


def test_authorizer_unauthorized_is_401() -> None:
    def authorize(event: dict[str, Any]) -> Any:
        raise Exception("Unauthorized")

    invoke = Recorder()
    response = gateway(invoke, authorize=authorize).handle(request("POST", "/v1/usage", body=b"{}"))
    assert response.status == 401
    assert invoke.calls == []


def test_authorizer_deny_policy_is_403() -> None:
    def authorize(event: dict[str, Any]) -> Any:
        answer = allow()(event)
        answer["policyDocument"]["Statement"][0]["Effect"] = "Deny"
        return answer

    invoke = Recorder()
    response = gateway(invoke, authorize=authorize).handle(request("POST", "/v1/usage", body=b"{}"))
    assert response.status == 403
    assert invoke.calls == []


def test_an_allow_for_another_method_arn_is_403() -> None:
    def authorize(event: dict[str, Any]) -> Any:
        answer = allow()(event)
        answer["policyDocument"]["Statement"][0]["Resource"] = method_arn("GET", "/health")
        return answer

    response = gateway(Recorder(), authorize=authorize).handle(request("POST", "/v1/usage", body=b"{}"))
    assert response.status == 403


@pytest.mark.parametrize(
    "answer",
    [
        lambda event: {"policyDocument": allow()(event)["policyDocument"]},
        lambda event: {"principalId": "p"},
        lambda event: {**allow()(event), "context": {"nested": {"a": 1}}},
        lambda event: None,
    ],
    ids=["no-principal", "no-policy", "nested-context", "nothing"],
)
def test_a_broken_authorizer_answer_is_500(answer: Any) -> None:
    invoke = Recorder()
    response = gateway(invoke, authorize=answer).handle(request("POST", "/v1/usage", body=b"{}"))
    assert response.status == 500
    assert invoke.calls == []


def test_an_authorizer_crash_is_500() -> None:
    def authorize(event: dict[str, Any]) -> Any:
        raise RuntimeError("boom")

    assert gateway(Recorder(), authorize=authorize).handle(request("POST", "/v1/usage", body=b"{}")).status == 500


def test_policy_evaluation_explicit_deny_wins_and_wildcards_match() -> None:
    arn = method_arn("POST", "/v1/usage")
    wildcard = f"arn:aws:execute-api:us-east-1:{ACCOUNT}:{API_ID}/{STAGE}/*"
    allow_all = {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": wildcard}
    deny_one = {"Effect": "Deny", "Action": ["execute-api:*"], "Resource": [arn]}
    assert policy_allows({"Statement": allow_all}, arn)
    assert not policy_allows({"Statement": [allow_all, deny_one]}, arn)
    assert not policy_allows({"Statement": [{**allow_all, "Action": "s3:GetObject"}]}, arn)
    assert not policy_allows({"Statement": []}, arn)


def test_authorizer_context_values_must_be_scalars() -> None:
    answer = {
        "principalId": "p",
        "policyDocument": {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]},
    }
    context = authorizer_context({**answer, "context": {"n": 1.5, "s": "x"}}, "arn", 7)
    assert context == {"n": "1.5", "s": "x", "principalId": "p", "integrationLatency": 7}


# ------------------------------------------------------------------------------------------ extras


def test_local_extra_routes_bypass_routing_and_auth() -> None:
    from local_stack.gateway import HttpResponse

    invoke = Recorder()
    gw = gateway(
        invoke,
        extra_routes={("GET", "/openapi.json"): lambda req: HttpResponse(200, [("Content-Type", "x")], b"doc")},
    )
    assert gw.handle(request("GET", "/openapi.json")).body == b"doc"
    assert invoke.calls == []


def test_the_authorizer_answer_is_cached_per_authorization_header_as_the_stage_caches_it() -> None:
    calls: list[str] = []
    allow_a = allow("t_a")

    def authorize(event: dict[str, Any]) -> dict[str, Any]:
        calls.append(event["headers"]["Authorization"])
        return allow_a(event)

    gw = gateway(Recorder(), authorize=authorize)
    body = json.dumps({"tenant_id": "t_a", "resource_type": "api_calls", "quantity": 1}).encode()
    for key in ("Bearer k1", "Bearer k1", "Bearer k2", "Bearer k1"):
        response = gw.handle(request("POST", "/v1/entitlements/check", headers=[("Authorization", key)], body=body))
        assert response.status == 200
    assert calls == ["Bearer k1", "Bearer k2"]


def test_with_the_cache_off_every_request_runs_the_authorizer() -> None:
    calls: list[dict[str, Any]] = []
    allow_a = allow("t_a")
    gw = gateway(Recorder(), authorize=lambda e: calls.append(e) or allow_a(e), authorizer_cache_seconds=0)
    for _ in range(2):
        gw.handle(request("GET", "/v1/tenants/t_a/entitlements", headers=[("Authorization", "Bearer k1")]))
    assert len(calls) == 2
