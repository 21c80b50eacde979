"""API Gateway REST (v1 proxy) events, shaped as API Gateway sends them to a Lambda proxy integration."""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any
from urllib.parse import parse_qsl

from billing_platform import resources


def _match_route(method: str, path: str) -> tuple[str, dict[str, str] | None]:
    for route, _fn in resources.routes():
        if route.method != method:
            continue
        pattern = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", route.path) + "$"
        match = re.match(pattern, path)
        if match:
            return route.path, (match.groupdict() or None)
    return path, None


def api_event(
    method: str,
    path: str,
    body: Any = None,
    *,
    query: dict[str, str] | str | None = None,
    headers: dict[str, str] | None = None,
    tenant_id: str | None = None,
    operator: bool = False,
    authorizer: dict[str, Any] | None = None,
    base64_body: bool = False,
    raw_body: str | bytes | None = None,
) -> dict[str, Any]:
    """A proxy event for `method path`. `tenant_id` makes the caller a tenant API key of that tenant
    (authorizer context as the Lambda authorizer sets it); `operator` makes it an IAM operator."""
    resource, path_params = _match_route(method, path)
    if isinstance(query, str):
        query = dict(parse_qsl(query, keep_blank_values=True))
    if raw_body is not None:
        text = raw_body.decode() if isinstance(raw_body, bytes) else raw_body
    elif body is None:
        text = None
    else:
        text = body if isinstance(body, str) else json.dumps(body)
    if text is not None and base64_body:
        text = base64.b64encode(text.encode()).decode()
    hdrs = {"Content-Type": "application/json", "Host": "abc123.execute-api.us-east-1.amazonaws.com"}
    hdrs.update(headers or {})
    request_id = str(uuid.uuid4())
    identity: dict[str, Any] = {
        "sourceIp": "203.0.113.10",
        "userAgent": "pytest",
        "userArn": None,
        "caller": None,
    }
    auth_ctx = authorizer
    if operator:
        identity["userArn"] = "arn:aws:iam::123456789012:user/operator"
        identity["caller"] = "AIDAEXAMPLEOPERATOR"
    elif tenant_id is not None and auth_ctx is None:
        auth_ctx = {
            "principalId": f"key_{tenant_id}",
            "principal_type": "tenant",
            "tenant_id": tenant_id,
            "key_id": f"key_{tenant_id}",
            "integrationLatency": 3,
        }
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": hdrs,
        "multiValueHeaders": {k: [v] for k, v in hdrs.items()},
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": path_params,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "abc123",
            "resourcePath": resource,
            "httpMethod": method,
            "extendedRequestId": request_id,
            "requestTime": "25/Nov/2026:12:00:00 +0000",
            "path": f"/prod{path}",
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": "prod",
            "domainPrefix": "abc123",
            "requestTimeEpoch": 1795694400000,
            "requestId": request_id,
            "identity": identity,
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "apiId": "abc123",
            **({"authorizer": auth_ctx} if auth_ctx is not None else {}),
        },
        "body": text,
        "isBase64Encoded": bool(base64_body and text is not None),
    }


def json_body(response: dict[str, Any]) -> Any:
    """Decode a proxy response body."""
    body = response.get("body") or "null"
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return json.loads(body)
