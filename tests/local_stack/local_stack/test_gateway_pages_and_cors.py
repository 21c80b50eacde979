"""The local gateway answers the pages' own routes (/portal, /console, /portal/assets/...) as it answers the
API: one stage throttle, the same error bodies for 404, 405, 413 and 429; and it answers the CORS preflights
of the routes a portal token may read as the deployed MOCK methods do, for those routes only."""

from __future__ import annotations

import json
from typing import Any

import pytest

from billing_platform import resources
from local_stack.gateway import Gateway, HttpRequest, HttpResponse, TokenBucket

OPERATOR_TOKEN = "op-token-for-tests"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, name: str, event: dict[str, Any]) -> Any:
        self.calls.append(name)
        return {"statusCode": 200, "headers": {"Content-Type": "text/html"}, "body": "<!doctype html>"}


class StoppedClock:
    def __call__(self) -> float:
        return 1000.0


def allow_all(event: dict[str, Any]) -> dict[str, Any]:
    statement = {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": event["methodArn"]}
    return {
        "principalId": "key_1",
        "policyDocument": {"Version": "2012-10-17", "Statement": [statement]},
        "context": {"principal_type": "tenant", "tenant_id": "t_a"},
    }


def get(gw: Gateway, target: str, method: str = "GET", body: bytes = b"", **headers: str) -> HttpResponse:
    pairs = [("Host", "127.0.0.1:8765"), ("Authorization", "Bearer bk_x"), *headers.items()]
    return gw.handle(HttpRequest(method, target, headers=pairs, body=body))


def shape(response: HttpResponse) -> tuple[int, dict[str, Any], str | None]:
    return response.status, json.loads(response.body), response.header("Content-Type")


def test_the_pages_share_the_stage_throttle_and_its_429_with_the_api() -> None:
    invoke = Recorder()
    gw = Gateway(
        invoke, operator_token=OPERATOR_TOKEN, authorize=allow_all, throttle=TokenBucket(0, 2, clock=StoppedClock())
    )
    assert get(gw, "/v1/tenants/t_a/events").status == 200
    assert get(gw, "/portal").status == 200
    page, api, asset = get(gw, "/console"), get(gw, "/v1/tenants/t_a/events"), get(gw, "/portal/assets/portal.js")
    assert shape(page) == shape(api) == shape(asset)
    assert shape(page) == (429, {"code": "rate_limited", "message": "Too Many Requests"}, "application/json")
    assert invoke.calls == ["entitlements", "portal"]  # nothing past the throttle


@pytest.mark.parametrize(
    ("page_request", "api_request", "status"),
    [
        (("GET", "/portal/nothing/here", b""), ("GET", "/v1/nothing/here", b""), 404),
        (("POST", "/portal", b"{}"), ("POST", "/health", b"{}"), 405),
        (
            ("GET", "/portal", b"x" * (resources.MAX_REQUEST_BODY_BYTES + 1)),
            ("GET", "/v1/tenants/t_a/events", b"x" * (resources.MAX_REQUEST_BODY_BYTES + 1)),
            413,
        ),
    ],
)
def test_the_pages_errors_have_the_apis_body(
    page_request: tuple[str, str, bytes], api_request: tuple[str, str, bytes], status: int
) -> None:
    invoke = Recorder()
    gw = Gateway(invoke, operator_token=OPERATOR_TOKEN, authorize=allow_all)
    page = get(gw, page_request[1], page_request[0], page_request[2])
    api = get(gw, api_request[1], api_request[0], api_request[2])
    assert page.status == api.status == status
    assert set(json.loads(page.body)) == set(json.loads(api.body)) == {"code", "message"}
    assert json.loads(page.body)["code"] == json.loads(api.body)["code"]
    assert page.header("Content-Type") == api.header("Content-Type") == "application/json"
    if status == 405:
        assert page.header("Allow") == api.header("Allow") == "GET"
    assert invoke.calls == []


@pytest.mark.parametrize(
    "path", ["/v1/tenants/t_a/entitlements", "/v1/tenants/t_a/usage/series", "/v1/entities/team-a/limits"]
)
def test_a_preflight_on_a_portal_readable_route_is_answered_without_a_function(path: str) -> None:
    invoke = Recorder()
    gw = Gateway(invoke, operator_token=OPERATOR_TOKEN, authorize=allow_all)
    answer = gw.handle(HttpRequest("OPTIONS", path, headers=[("Origin", "https://app.example.com")]))
    assert answer.status == 204
    assert answer.header("Access-Control-Allow-Origin") == "*"
    assert answer.header("Access-Control-Allow-Methods") == "GET, OPTIONS"
    assert "Authorization" in (answer.header("Access-Control-Allow-Headers") or "")
    assert invoke.calls == []


@pytest.mark.parametrize("path", ["/v1/usage", "/v1/tenants/t_a/grants", "/v1/entities", "/v1/tenants/t_a/api-keys"])
def test_no_preflight_is_answered_for_routes_a_portal_token_cannot_read(path: str) -> None:
    gw = Gateway(Recorder(), operator_token=OPERATOR_TOKEN, authorize=allow_all)
    answer = gw.handle(HttpRequest("OPTIONS", path, headers=[("Origin", "https://app.example.com")]))
    assert answer.status == 405
    assert answer.header("Access-Control-Allow-Methods") is None


def refuse(event: dict[str, Any]) -> dict[str, Any]:
    raise RuntimeError("Unauthorized")  # how a Lambda authorizer says 401


def test_the_gateways_own_errors_are_readable_cross_origin() -> None:
    gw = Gateway(Recorder(), operator_token=OPERATOR_TOKEN, authorize=refuse)
    unauthenticated = gw.handle(
        HttpRequest("GET", "/v1/tenants/t_a/entitlements", headers=[("Origin", "https://a.io")])
    )
    assert unauthenticated.status == 401
    assert unauthenticated.header("Access-Control-Allow-Origin") == "*"
