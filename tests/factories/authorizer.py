"""API Gateway REST Lambda authorizer (REQUEST type) events, and a small model of what API Gateway does
with the authorizer's answer, so a test can send one request through authorizer + handler."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from billing_platform import resources
from tests.factories.apigw import api_event
from tests.factories.lambda_context import LambdaContext

REGION = "us-east-1"
ACCOUNT = "123456789012"
API_ID = "abc123"
STAGE = "prod"


def method_arn(method: str, path: str, *, stage: str = STAGE) -> str:
    return f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API_ID}/{stage}/{method}{path}"


def authorizer_event(
    method: str,
    path: str,
    *,
    authorization: str | None = None,
    headers: dict[str, str] | None = None,
    stage: str = STAGE,
) -> dict[str, Any]:
    """A REQUEST authorizer event for `method path` as API Gateway sends it (no body)."""
    hdrs = dict(headers or {})
    if authorization is not None:
        hdrs["Authorization"] = authorization
    proxy = api_event(method, path, headers=hdrs)
    request_context = dict(proxy["requestContext"])
    request_context.pop("authorizer", None)
    return {
        "type": "REQUEST",
        "methodArn": method_arn(method, path, stage=stage),
        "resource": proxy["resource"],
        "path": path,
        "httpMethod": method,
        "headers": proxy["headers"],
        "multiValueHeaders": proxy["multiValueHeaders"],
        "queryStringParameters": {},
        "multiValueQueryStringParameters": {},
        "pathParameters": proxy["pathParameters"] or {},
        "stageVariables": {},
        "requestContext": request_context,
    }


def bearer(key: str) -> str:
    return f"Bearer {key}"


def _iam_match(pattern: str, value: str) -> bool:
    # IAM resource wildcards: `*` any run of characters (slashes included), `?` one character.
    regex = "^" + "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern) + "$"
    return re.match(regex, value) is not None


def policy_allows(policy: dict[str, Any], arn: str) -> bool:
    """Evaluate the authorizer's policy for one methodArn the way IAM does (explicit Deny wins)."""
    allowed = False
    for statement in policy["policyDocument"]["Statement"]:
        resources_ = statement["Resource"]
        if isinstance(resources_, str):
            resources_ = [resources_]
        if any(_iam_match(r, arn) for r in resources_):
            if statement["Effect"] == "Deny":
                return False
            allowed = True
    return allowed


def _gateway_error(status: int, message: str) -> dict[str, Any]:
    return {"statusCode": status, "body": json.dumps({"message": message}), "multiValueHeaders": {}}


def route_for(method: str, path: str) -> resources.RouteSpec | None:
    for route, _fn in resources.routes():
        pattern = "^" + re.sub(r"\{(\w+)\}", r"[^/]+", route.path) + "$"
        if route.method == method and re.match(pattern, path):
            return route
    return None


def gateway_call(
    method: str,
    path: str,
    body: Any = None,
    *,
    handler: Callable[[dict[str, Any], Any], dict[str, Any]],
    authorizer: Callable[[dict[str, Any], Any], dict[str, Any]] | None = None,
    authorization: str | None = None,
    operator: bool = False,
    query: dict[str, str] | None = None,
    origin: str | None = None,
) -> dict[str, Any]:
    """One request through a model of the deployed API: tenant routes go through the Lambda authorizer
    (401 when it raises Unauthorized, 403 when its policy does not cover the method ARN), operator routes
    need IAM (`operator=True`, otherwise API Gateway's 403), public routes go straight to the handler."""
    route = route_for(method, path)
    if route is None:
        return _gateway_error(404, "Missing Authentication Token")
    headers = {"Authorization": authorization} if authorization is not None else {}
    if origin is not None:
        headers["Origin"] = origin
    if route.auth is resources.Auth.OPERATOR:
        if not operator:
            return _gateway_error(403, "Missing Authentication Token")
        return handler(api_event(method, path, body, operator=True, headers=headers, query=query), LambdaContext())
    if route.auth is resources.Auth.PUBLIC:
        return handler(api_event(method, path, body, headers=headers, query=query), LambdaContext())
    assert authorizer is not None, "tenant routes need the authorizer handler"
    if authorization is None:
        return _gateway_error(401, "Unauthorized")  # identity source missing: authorizer not even called
    try:
        policy = authorizer(authorizer_event(method, path, authorization=authorization), LambdaContext())
    except Exception as exc:
        if str(exc) == "Unauthorized":
            return _gateway_error(401, "Unauthorized")
        return _gateway_error(500, "AuthorizerConfigurationException")
    if not policy_allows(policy, method_arn(method, path)):
        return _gateway_error(403, "User is not authorized to access this resource")
    context = {**policy.get("context", {}), "principalId": policy["principalId"]}
    return handler(api_event(method, path, body, authorizer=context, headers=headers, query=query), LambdaContext())
