"""API Gateway (REST API, Lambda proxy integration) on one machine, without sockets.

`Gateway.handle(HttpRequest) -> HttpResponse` does what the deployed stage does, in its order: stage
throttling (token bucket), route match from `resources.routes()` (404 unknown path, 405 known path with
another method), body size, authorization (public / operator token / the Lambda REQUEST authorizer and
its IAM policy), the proxy event, the function, and the proxy response back to HTTP. The HTTP server
(`local_stack.server`) only moves bytes; everything here is unit-testable.

Faithful details: `path` keeps its percent-encoding while `pathParameters` and query values are decoded;
`headers` / `queryStringParameters` keep the last value of a repeated name and the `multiValue*` maps keep
all of them; bodies with a binary media type (or that are not UTF-8) arrive base64 with
`isBase64Encoded`; authorizer context values reach the function as strings, next to `principalId`.
Errors the gateway produces itself use the platform's `{"code", "message"}` body.
"""

from __future__ import annotations

import base64
import fnmatch
import hmac
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

from billing_platform import resources
from billing_platform.resources import Auth, FunctionSpec, RouteSpec
from local_stack import sigv4
from local_stack.containers import FunctionThrottled, FunctionTimeout
from local_stack.cors import preflight_headers
from local_stack.iam import AuthorizerBroken, AuthorizerDenied, AuthorizerUnauthorized
from local_stack.iam import authorizer_context as authorizer_context
from local_stack.iam import policy_allows as policy_allows

log = logging.getLogger("local_stack.gateway")

REGION = "us-east-1"
ACCOUNT = "000000000000"
API_ID = "local"
STAGE = "local"
LOCAL_OPERATOR_PRINCIPAL = "local-operator"

BINARY_MEDIA_TYPES = ("application/octet-stream", "application/pdf", "application/zip", "image/*", "audio/*")

# invoke(function_name, event) -> proxy response; authorize(event) -> authorizer response
Invoke = Callable[[str, dict[str, Any]], Any]
Authorize = Callable[[dict[str, Any]], Any]


@dataclass
class HttpRequest:
    method: str
    target: str  # path and query as sent, e.g. "/v1/usage/top?limit=5"
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    source_ip: str = "127.0.0.1"

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0] or "/"

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    def header(self, name: str) -> str | None:
        found = None
        for key, value in self.headers:
            if key.lower() == name.lower():
                found = value
        return found


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[-1] if values else None

    def json(self) -> Any:
        return json.loads(self.body)


def error(status: int, code: str, message: str) -> HttpResponse:
    body = json.dumps({"code": code, "message": message}).encode()
    # As the deployed gateway responses: readable from any page (no data), see billing_platform.api.cors.
    headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", code), ("Access-Control-Allow-Origin", "*")]
    return HttpResponse(status, headers, body)


def _throttled() -> HttpResponse:
    response = error(429, "rate_limited", "Too Many Requests")
    response.headers.append(("Retry-After", "1"))
    return response


# ---------------------------------------------------------------------------------------------- routing


@dataclass(frozen=True)
class RouteMatch:
    route: RouteSpec
    function: FunctionSpec
    path_parameters: dict[str, str]


class RouteNotFound(Exception):
    pass


class MethodNotAllowed(Exception):
    def __init__(self, allowed: list[str]) -> None:
        super().__init__(", ".join(allowed))
        self.allowed = allowed


def _pattern(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$")


class RouteTable:
    """Routes of `resources.routes()`, matched as API Gateway matches resources: literal segments win
    over `{param}` segments; a known resource with another method is 405."""

    def __init__(self, routes: Iterable[tuple[RouteSpec, FunctionSpec]] | None = None) -> None:
        entries = list(resources.routes() if routes is None else routes)
        # More literal segments first, so /v1/usage/top is not taken for /v1/usage/{x}.
        entries.sort(key=lambda e: -sum(1 for s in e[0].path.split("/") if s and not s.startswith("{")))
        self._entries = [(route, fn, _pattern(route.path)) for route, fn in entries]

    def match(self, method: str, raw_path: str) -> RouteMatch:
        allowed: list[str] = []
        for route, fn, pattern in self._entries:
            found = pattern.match(raw_path)
            if not found:
                continue
            if route.method == method:
                params = {k: unquote(v) for k, v in found.groupdict().items()}
                return RouteMatch(route, fn, params)
            allowed.append(route.method)
        if allowed:
            raise MethodNotAllowed(sorted(set(allowed)))
        raise RouteNotFound(raw_path)


# ---------------------------------------------------------------------------------------------- throttle


class TokenBucket:
    """Stage throttling as API Gateway applies it: `rate` tokens per second, up to `burst` banked."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False


# ---------------------------------------------------------------------------------------------- events


def _is_binary(content_type: str | None, body: bytes) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media and any(fnmatch.fnmatch(media, pattern) for pattern in BINARY_MEDIA_TYPES):
        return True
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _single_and_multi(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key, value in pairs:
        single[key] = value
        multi.setdefault(key, []).append(value)
    return single, multi


def method_arn(method: str, raw_path: str, *, api_id: str = API_ID, stage: str = STAGE) -> str:
    return f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api_id}/{stage}/{method}{raw_path}"


def proxy_event(
    request: HttpRequest,
    match: RouteMatch,
    *,
    authorizer: dict[str, Any] | None = None,
    stage: str = STAGE,
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The REST API proxy (payload v1) event API Gateway builds for this request."""
    now = now or datetime.now(UTC)
    request_id = request_id or str(uuid.uuid4())
    headers, multi_headers = _single_and_multi(request.headers)
    query, multi_query = _single_and_multi(parse_qsl(request.query, keep_blank_values=True))
    binary = bool(request.body) and _is_binary(request.header("Content-Type"), request.body)
    if not request.body:
        body = None
    elif binary:
        body = base64.b64encode(request.body).decode()
    else:
        body = request.body.decode("utf-8")
    host = request.header("Host") or "127.0.0.1"
    identity = {
        "cognitoIdentityPoolId": None,
        "accountId": None,
        "cognitoIdentityId": None,
        "caller": None,
        "sourceIp": request.source_ip,
        "principalOrgId": None,
        "accessKey": None,
        "cognitoAuthenticationType": None,
        "cognitoAuthenticationProvider": None,
        "userArn": None,
        "userAgent": request.header("User-Agent"),
        "user": None,
    }
    context: dict[str, Any] = {
        "resourceId": uuid.uuid5(uuid.NAMESPACE_URL, match.route.path).hex[:6],
        "resourcePath": match.route.path,
        "httpMethod": request.method,
        "extendedRequestId": base64.b32encode(uuid.uuid4().bytes).decode()[:16],
        "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "path": f"/{stage}{request.path}",
        "accountId": ACCOUNT,
        "protocol": "HTTP/1.1",
        "stage": stage,
        "domainPrefix": host.split(".", 1)[0].split(":", 1)[0],
        "requestTimeEpoch": int(now.timestamp() * 1000),
        "requestId": request_id,
        "identity": identity,
        "domainName": host.split(":", 1)[0],
        "apiId": API_ID,
    }
    if authorizer is not None:
        context["authorizer"] = authorizer
    return {
        "resource": match.route.path,
        "path": request.path,
        "httpMethod": request.method,
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": match.path_parameters or None,
        "stageVariables": None,
        "requestContext": context,
        "body": body,
        "isBase64Encoded": binary,
    }


def authorizer_request_event(request: HttpRequest, match: RouteMatch, proxy: dict[str, Any]) -> dict[str, Any]:
    """The REQUEST authorizer event API Gateway sends before invoking a tenant route."""
    return {
        "type": "REQUEST",
        "methodArn": method_arn(request.method, request.path, stage=proxy["requestContext"]["stage"]),
        "resource": proxy["resource"],
        "path": proxy["path"],
        "httpMethod": proxy["httpMethod"],
        "headers": proxy["headers"],
        "multiValueHeaders": proxy["multiValueHeaders"],
        "queryStringParameters": proxy["queryStringParameters"],
        "multiValueQueryStringParameters": proxy["multiValueQueryStringParameters"],
        "pathParameters": proxy["pathParameters"],
        "stageVariables": proxy["stageVariables"],
        "requestContext": {k: v for k, v in proxy["requestContext"].items() if k != "authorizer"},
    }


def from_proxy_response(result: Any) -> HttpResponse:
    """Turn a proxy integration response into HTTP, as API Gateway does; a malformed one is 502."""
    if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
        raise MalformedProxyResponse(f"not a proxy response: {type(result).__name__}")
    headers: list[tuple[str, str]] = []
    multi = result.get("multiValueHeaders") or {}
    for name, values in multi.items():
        headers.extend((name, str(v)) for v in values)
    # Both maps: merged, and a name in multiValueHeaders wins over the same name in headers.
    multi_names = {name.lower() for name in multi}
    for name, value in (result.get("headers") or {}).items():
        if name.lower() not in multi_names:
            headers.append((name, str(value)))
    raw = result.get("body")
    if raw is None:
        body = b""
    elif result.get("isBase64Encoded"):
        body = base64.b64decode(raw)
    else:
        body = str(raw).encode("utf-8")
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return HttpResponse(result["statusCode"], headers, body)


class MalformedProxyResponse(Exception):
    pass


# ---------------------------------------------------------------------------------------------- gateway


class Gateway:
    """One API stage: throttling, routing, auth and the proxy integration for every route."""

    def __init__(
        self,
        invoke: Invoke,
        *,
        operator_token: str,
        authorize: Authorize | None = None,
        routes: RouteTable | None = None,
        throttle: TokenBucket | None = None,
        max_body_bytes: int = resources.MAX_REQUEST_BODY_BYTES,
        extra_routes: dict[tuple[str, str], Callable[[HttpRequest], HttpResponse]] | None = None,
        authorizer_cache_seconds: float = resources.AUTHORIZER_CACHE_TTL_SECONDS,
    ) -> None:
        self._invoke = invoke
        self._authorize = authorize
        self._operator_token = operator_token
        self._routes = routes or RouteTable()
        self._throttle = throttle or TokenBucket(resources.API_THROTTLE_RATE_LIMIT, resources.API_THROTTLE_BURST_LIMIT)
        self._max_body = max_body_bytes
        # The stage caches a tenant authorizer's answer per Authorization header, as deployed (0: off).
        self._authorizer_ttl = authorizer_cache_seconds
        self._authorizer_cache: dict[str, tuple[float, Any]] = {}
        self._authorizer_lock = threading.Lock()
        # Local conveniences outside the API (OpenAPI document, Swagger UI); not throttled or authorized.
        self._extra = extra_routes or {}

    def handle(self, request: HttpRequest) -> HttpResponse:
        extra = self._extra.get((request.method, request.path))
        if extra is not None:
            return extra(request)
        if not self._throttle.take():
            return error(429, "rate_limited", "Too Many Requests")
        preflight = preflight_headers(request.method, request.path)
        if preflight is not None:
            return HttpResponse(204, preflight, b"")
        try:
            match = self._routes.match(request.method, request.path)
        except MethodNotAllowed as exc:
            response = error(405, "method_not_allowed", f"{request.method} is not allowed on {request.path}")
            response.headers.append(("Allow", ", ".join(exc.allowed)))
            return response
        except RouteNotFound:
            return error(404, "not_found", f"no route for {request.method} {request.path}")
        if len(request.body) > self._max_body:
            return error(413, "payload_too_large", f"request body is larger than {self._max_body} bytes")

        event = proxy_event(request, match)
        try:
            event["requestContext"]["authorizer"] = self._authorizer_for(request, match, event)
        except AuthorizerUnauthorized:
            return error(401, "unauthenticated", "Unauthorized")
        except AuthorizerDenied:
            return error(403, "forbidden", "User is not authorized to access this resource")
        except AuthorizerBroken as exc:
            log.error("authorizer failed for %s %s: %s", request.method, request.path, exc)
            return error(500, "authorizer_configuration_error", "Internal server error")
        except FunctionThrottled as exc:
            log.warning("authorizer: %s", exc)
            return _throttled()
        if event["requestContext"]["authorizer"] is None:
            del event["requestContext"]["authorizer"]

        try:
            result = self._invoke(match.function.name, event)
            return from_proxy_response(result)
        except FunctionTimeout as exc:
            log.error("%s on %s %s", exc, request.method, request.path)
            if exc.integration:
                # API Gateway gave up waiting (29 s); a function's own shorter timeout is a function error (502).
                return error(504, "integration_timeout", "Endpoint request timed out")
            return error(502, "bad_gateway", "Internal server error")
        except FunctionThrottled as exc:
            log.warning("%s", exc)
            return _throttled()
        except MalformedProxyResponse as exc:
            log.error("%s returned a malformed proxy response: %s", match.function.name, exc)
            return error(502, "bad_gateway", "Internal server error")
        except Exception:
            # Lambda reports an unhandled error; API Gateway answers 502 without details.
            log.exception("function %s failed on %s %s", match.function.name, request.method, request.path)
            return error(502, "bad_gateway", "Internal server error")

    def _authorizer_for(self, request: HttpRequest, match: RouteMatch, event: dict[str, Any]) -> dict[str, Any] | None:
        if match.route.auth is Auth.PUBLIC:
            return None
        if match.route.auth is Auth.OPERATOR:
            return self._operator(request)
        return self._tenant(request, match, event)

    def _operator(self, request: HttpRequest) -> dict[str, Any]:
        header = request.header("Authorization")
        if not header:
            raise AuthorizerUnauthorized()
        if sigv4.is_sigv4(header):  # as deployed: IAM, here for the one local principal (local_stack.sigv4)
            signed = {name.lower(): value for name, value in request.headers}
            url = f"http://{request.header('Host')}{request.target}"
            if not sigv4.verify(request.method, url, signed, self._operator_token, body=request.body):
                raise AuthorizerDenied("SigV4 signature")
            return {"principal_type": "operator", "principalId": LOCAL_OPERATOR_PRINCIPAL, "integrationLatency": 0}
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self._operator_token.encode()):
            raise AuthorizerDenied("operator token")
        return {"principal_type": "operator", "principalId": LOCAL_OPERATOR_PRINCIPAL, "integrationLatency": 0}

    def _tenant(self, request: HttpRequest, match: RouteMatch, event: dict[str, Any]) -> dict[str, Any]:
        if self._authorize is None:
            raise AuthorizerBroken("no authorizer configured")
        auth_event = authorizer_request_event(request, match, event)
        identity = request.header("Authorization")
        cached = self._cached_policy(identity)
        if cached is not None:
            # API Gateway answers from its cache (keyed by the identity source, the Authorization header)
            # and evaluates the cached policy against this request's method ARN.
            return authorizer_context(cached, auth_event["methodArn"], 0)
        started = time.monotonic()
        try:
            response = self._authorize(auth_event)
        except FunctionThrottled:
            raise
        except Exception as exc:
            # A Lambda authorizer signals 401 by failing with exactly "Unauthorized".
            if str(exc) == "Unauthorized":
                raise AuthorizerUnauthorized() from exc
            log.exception("authorizer raised")
            raise AuthorizerBroken(f"{type(exc).__name__}: {exc}") from exc
        latency = int((time.monotonic() - started) * 1000)
        context = authorizer_context(response, auth_event["methodArn"], latency)
        self._cache_policy(identity, response)
        return context

    def _cached_policy(self, identity: str | None) -> Any:
        if identity is None or self._authorizer_ttl <= 0:
            return None
        with self._authorizer_lock:
            entry = self._authorizer_cache.get(identity)
            if entry is None or entry[0] <= time.monotonic():
                self._authorizer_cache.pop(identity, None)
                return None
            return entry[1]

    def _cache_policy(self, identity: str | None, response: Any) -> None:
        if identity is None or self._authorizer_ttl <= 0:
            return
        with self._authorizer_lock:
            self._authorizer_cache[identity] = (time.monotonic() + self._authorizer_ttl, response)
