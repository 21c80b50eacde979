"""The security suite's view of the platform: the real local stack (DynamoDB Local, moto's server, the
gateway with the real Lambda authorizer and the real handlers), the credentials of the route x
credential matrix, a request for every route of `resources.routes()` built from the route's own served
OpenAPI schema, and snapshots of every table and the usage queue to prove that a refused request
changed nothing.

Nothing here knows a handler's body by heart: bodies are derived from the OpenAPI document each
function's Powertools resolver generates, with a few well-known field names (tenant_id, resource_type,
price_id ...) filled with values that make the request valid. A route added to `resources.routes()`
tomorrow is covered without touching this file.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from typing import Any
from urllib.parse import quote, urlencode

from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st

from billing_platform import resources
from billing_platform.resources import Auth, FunctionSpec, RouteSpec
from local_stack.gateway import Gateway, HttpRequest, HttpResponse

TENANT_A = "t_sec_alpha"  # the tenant every matrix request targets
TENANT_B = "t_sec_bravo"  # the other tenant, whose key must not reach TENANT_A
# A Luhn-valid test card number put into free-text fields: it must never reach the audit log or a log line.
CARD_NUMBER = "4242 4242 4242 4242"
ROUTE_IDS = [f"{route.method} {route.path}" for route, _fn in resources.routes()]


class Credential(StrEnum):
    NONE = "none"
    OPERATOR = "operator"
    OWN = "own tenant key"
    OTHER = "other tenant key"
    REVOKED = "revoked key"


CREDENTIALS = tuple(Credential)


def route_id(route: RouteSpec) -> str:
    return f"{route.method} {route.path}"


def route_by_id(rid: str) -> tuple[RouteSpec, FunctionSpec]:
    for route, fn in resources.routes():
        if route_id(route) == rid:
            return route, fn
    raise KeyError(rid)


def is_mutation(route: RouteSpec) -> bool:
    return route.method != "GET"


def needs_audit(route: RouteSpec) -> bool:
    """Mutations the issue wants audited: every operator mutation (customers, subscriptions, plan
    changes, keys) and the webhook (its effects). The tenant hot path (check/consume/release, usage
    ingest) is recorded in its own ledgers, not one audit entry per call."""
    if route.auth is Auth.OPERATOR and is_mutation(route):
        return True
    return route.path == "/v1/webhooks/stripe"


# ---------------------------------------------------------------------------------------------- snapshots


def _normalise(item: dict[str, Any]) -> str:
    # The authorizer's last-used bookkeeping is the one write a refused request may cause (on the
    # presenting key's own item): it is not a change of the targeted tenant's data.
    kept = {k: v for k, v in item.items() if k != "last_used_at"}
    return json.dumps(kept, sort_keys=True)


@dataclass(frozen=True)
class Snapshot:
    tables: dict[str, tuple[str, ...]]
    queue_messages: int

    def diff(self, other: Snapshot) -> list[str]:
        """Human-readable differences (empty when equal)."""
        out: list[str] = []
        for table, items in self.tables.items():
            before, after = set(items), set(other.tables.get(table, ()))
            out += [f"{table}: - {i[:300]}" for i in sorted(before - after)]
            out += [f"{table}: + {i[:300]}" for i in sorted(after - before)]
        if self.queue_messages != other.queue_messages:
            out.append(f"usage queue: {self.queue_messages} -> {other.queue_messages} messages")
        return out


def take_snapshot(dynamodb: Any, table_names: list[str], sqs: Any = None, queue_url: str | None = None) -> Snapshot:
    tables: dict[str, tuple[str, ...]] = {}
    for name in table_names:
        items: list[str] = []
        kwargs: dict[str, Any] = {"TableName": name, "ConsistentRead": True}
        while True:
            page = dynamodb.scan(**kwargs)
            items += [_normalise(i) for i in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        tables[name] = tuple(sorted(items))
    messages = 0
    if sqs is not None and queue_url:
        attrs = sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        messages = int(attrs.get("ApproximateNumberOfMessages", 0)) + int(
            attrs.get("ApproximateNumberOfMessagesNotVisible", 0)
        )
    return Snapshot(tables, messages)


# ---------------------------------------------------------------------------------------------- OpenAPI


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while "$ref" in schema and seen < 20:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = components.get(name, {})
        seen += 1
    return schema


def operation_of(openapi: dict[str, Any], route: RouteSpec) -> dict[str, Any] | None:
    """The OpenAPI operation documenting `route` (Powertools writes paths as `/x/{param}` too)."""
    return (openapi.get("paths", {}).get(route.path) or {}).get(route.method.lower())


def request_body_schema(openapi: dict[str, Any], route: RouteSpec) -> dict[str, Any] | None:
    op = operation_of(openapi, route)
    if not op or "requestBody" not in op:
        return None
    content = op["requestBody"].get("content", {})
    media = content.get("application/json") or next(iter(content.values()), None)
    return (media or {}).get("schema")


@cache
def _regex_example(pattern: str) -> str:
    # The simplest string matching the pattern; hypothesis shrinks towards it deterministically.
    return str(
        find(
            st.from_regex(pattern, fullmatch=True),
            lambda s: True,
            settings=settings(
                database=None, phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck)
            ),
        )
    )


# Values for well-known field names, so a generated body is not only schema-valid but meaningful.
def _known_values(ctx: RequestContext) -> dict[str, Callable[[], Any]]:
    now = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return {
        "tenant_id": lambda: ctx.body_tenant,
        "resource_type": lambda: "api_calls",
        "resource": lambda: "api_calls",
        "price_id": lambda: ctx.price_id,
        "email": lambda: "ada@example.com",
        "name": lambda: f"Ada {CARD_NUMBER}",
        "description": lambda: f"card {CARD_NUMBER}",
        "customer_id": lambda: ctx.customer_id,
        "subscription_id": lambda: ctx.subscription_id,
        "record_id": lambda: f"rec_{uuid.uuid4().hex}",
        "idempotency_key": lambda: f"idem_{uuid.uuid4().hex}",
        "request_id": lambda: f"req_{uuid.uuid4().hex}",
        "timestamp": lambda: now,
        "quantity": lambda: 1,
        "model": lambda: "gpt-test",
        "url": lambda: "https://hooks.example.com/billing",
    }


def example(
    schema: dict[str, Any] | None, components: dict[str, Any], ctx: RequestContext, name: str | None = None
) -> Any:
    """A minimal valid instance of `schema` (required properties, plus `tenant_id` and `quantity` whenever
    the schema has them, so the body names the targeted tenant)."""
    schema = _resolve(schema or {}, components)
    known = _known_values(ctx)
    kind = schema.get("type")
    if name in known and kind not in ("object", "array"):
        value = known[name]()
        if kind == "string" and not isinstance(value, str):
            value = str(value)
        if kind == "integer" and isinstance(value, str):
            value = 1
        return value
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            options = [_resolve(o, components) for o in schema[combinator]]
            options = [o for o in options if o.get("type") != "null"] or options
            return example(options[0], components, ctx, name)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            merged.update(_resolve(part, components))
        return example(merged, components, ctx, name)
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        wanted = list(schema.get("required", []))
        # Optional but meaningful: the tenant (isolation) and the quantity (some routes need it unless
        # another optional field is given).
        wanted += [name for name in ("tenant_id", "quantity") if name in props and name not in wanted]
        return {k: example(props.get(k, {}), components, ctx, k) for k in wanted}
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        items = _resolve(schema.get("items", {}), components)
        if name == "records" and not items.get("properties"):
            # Free-form records validated one by one by the handler: a usage record.
            return [usage_record(ctx.body_tenant) for _ in range(count)]
        return [example(items, components, ctx, name) for _ in range(count)]
    if kind == "integer":
        return int(schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1 if "exclusiveMinimum" in schema else 1))
    if kind == "number":
        return 1
    if kind == "boolean":
        return False
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "date-time":
            return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        if fmt == "date":
            return datetime.now(UTC).date().isoformat()
        if "pattern" in schema:
            return _regex_example(schema["pattern"])
        return "x" * max(1, int(schema.get("minLength", 1)))
    return None


# ---------------------------------------------------------------------------------------------- requests


def usage_record(tenant_id: str) -> dict[str, Any]:
    return {
        "record_id": f"rec_{uuid.uuid4().hex}",
        "tenant_id": tenant_id,
        "resource_type": "api_calls",
        "quantity": 1,
        "timestamp": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
    }


@dataclass
class RequestContext:
    """What a route's request is made of: the tenant named in the path and in the body."""

    path_tenant: str
    body_tenant: str
    customer_id: str = "cus_unknown"
    subscription_id: str = "sub_unknown"
    key_id: str = "key_0000000000000000"
    endpoint_id: str = "we_0000000000000000"
    reservation_id: str = "rsv_" + "0" * 32  # well-formed, held by no one
    price_id: str = "price_pro_monthly"
    grant_id: str = "grt_0000000000000000"
    token_id: str = "ptk_0000000000000000"
    entity_id: str = "ent_unknown"


@dataclass(frozen=True)
class PlannedRequest:
    method: str
    target: str
    body: Any
    names_tenant: bool  # the path or the body names a tenant

    @property
    def body_bytes(self) -> bytes:
        return b"" if self.body is None else json.dumps(self.body).encode()


def plan_request(
    route: RouteSpec, openapi: dict[str, Any], ctx: RequestContext, query: dict[str, str] | None = None
) -> PlannedRequest:
    """A valid request for `route` acting on `ctx`'s tenant."""
    values = {
        "tenant_id": ctx.path_tenant,
        "customer_id": ctx.customer_id,
        "subscription_id": ctx.subscription_id,
        "key_id": ctx.key_id,
        "endpoint_id": ctx.endpoint_id,
        "grant_id": ctx.grant_id,
        "reservation_id": ctx.reservation_id,
        "token_id": ctx.token_id,
        "entity_id": ctx.entity_id,
        "resource_type": "api_calls",
    }
    params = re.findall(r"\{(\w+)\}", route.path)
    path = route.path
    for param in params:
        path = path.replace("{" + param + "}", quote(values.get(param, "x1"), safe=""))
    components = openapi.get("components", {}).get("schemas", {})
    body_schema = request_body_schema(openapi, route)
    body = example(body_schema, components, ctx) if body_schema is not None else None
    required_query = {}
    op = operation_of(openapi, route) or {}
    for parameter in op.get("parameters", []):
        if parameter.get("in") == "query" and parameter.get("required"):
            required_query[parameter["name"]] = str(
                example(parameter.get("schema", {}), components, ctx, parameter["name"])
            )
    required_query.update(query or {})
    target = path + (("?" + urlencode(required_query)) if required_query else "")
    names_tenant = "tenant_id" in params or _mentions_tenant(body)
    return PlannedRequest(route.method, target, body, names_tenant)


def _mentions_tenant(body: Any) -> bool:
    if isinstance(body, dict):
        return "tenant_id" in body or any(_mentions_tenant(v) for v in body.values())
    if isinstance(body, list):
        return any(_mentions_tenant(v) for v in body)
    return False


# ---------------------------------------------------------------------------------------------- logs


class RecordingHandler(logging.Handler):
    """Keeps every log record, rendered with all its extra fields and exception text, for greps."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self._lines_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            rendered = json.dumps({k: v for k, v in vars(record).items() if k not in ("args",)}, default=repr)
            message = record.getMessage()
        except Exception:
            rendered, message = repr(vars(record)), str(record.msg)
        exc = logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        with self._lines_lock:
            self.lines.append(f"{message} {rendered} {exc}")


@contextmanager
def capture_all_logs() -> Iterator[RecordingHandler]:
    """Attach a recorder to the root logger and to every logger that does not propagate (Powertools
    loggers keep their own stdout handler and do not propagate). Levels are left alone: the security
    stack runs its functions at DEBUG, so the recorder sees everything they would ever log."""
    handler = RecordingHandler()
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger) and not lg.propagate
    ]
    for lg in loggers:
        lg.addHandler(handler)
    try:
        yield handler
    finally:
        for lg in loggers:
            lg.removeHandler(handler)


# ---------------------------------------------------------------------------------------------- the stack


@dataclass
class Invocation:
    function: str
    event: dict[str, Any]
    result: Any = None


@dataclass
class SecurityStack:
    """The started local stack plus what the security tests need around it."""

    stack: Any
    gateway: Gateway
    env: dict[str, str]
    headers: dict[Credential, str | None] = field(default_factory=dict)
    key_ids: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    invocations: list[Invocation] = field(default_factory=list)
    openapi_errors: dict[str, str] = field(default_factory=dict)
    customer_id: str = "cus_unknown"
    subscription_id: str = "sub_unknown"
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- calls

    def call(
        self,
        method: str,
        target: str,
        body: Any = None,
        *,
        credential: Credential = Credential.NONE,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> HttpResponse:
        hdrs: list[tuple[str, str]] = [("Host", "127.0.0.1"), ("User-Agent", "security-suite")]
        payload = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        if payload:
            hdrs.append(("Content-Type", "application/json"))
        auth = self.headers.get(credential)
        if auth:
            hdrs.append(("Authorization", auth))
        hdrs += list((headers or {}).items())
        return self.gateway.handle(HttpRequest(method=method, target=target, headers=hdrs, body=payload))

    def last_invocation(self, function: str) -> Invocation | None:
        with self._lock:
            for inv in reversed(self.invocations):
                if inv.function == function:
                    return inv
        return None

    # -- state

    def client(self, service: str) -> Any:
        import boto3
        from botocore.config import Config

        endpoint = self.env["AWS_ENDPOINT_URL_DYNAMODB" if service == "dynamodb" else "AWS_ENDPOINT_URL_SQS"]
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(account_id_endpoint_mode="disabled"),
        )

    @property
    def table_names(self) -> list[str]:
        return [self.env[spec.env_var] for spec in resources.TABLES]

    def snapshot(self) -> Snapshot:
        return take_snapshot(self._ddb, self.table_names, self._sqs, self.env.get(resources.USAGE_QUEUE.env_var))

    @property
    def _ddb(self) -> Any:
        if not hasattr(self, "_ddb_client"):
            self._ddb_client = self.client("dynamodb")
        return self._ddb_client

    @property
    def _sqs(self) -> Any:
        if not hasattr(self, "_sqs_client"):
            self._sqs_client = self.client("sqs")
        return self._sqs_client

    def audit_items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.env[resources.BILLING_TABLE.env_var],
            "FilterExpression": "begins_with(pk, :a)",
            "ExpressionAttributeValues": {":a": {"S": "AUDIT#"}},
            "ConsistentRead": True,
        }
        while True:
            page = self._ddb.scan(**kwargs)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # -- OpenAPI of each function, as served

    def openapi(self, fn: FunctionSpec) -> dict[str, Any]:
        module = self.stack.runtime.module(fn.name)
        app = getattr(module, "app", None)
        if app is None or not hasattr(app, "get_openapi_json_schema"):
            return {}
        try:
            return dict(json.loads(app.get_openapi_json_schema()))
        except Exception as exc:  # reported by the OpenAPI test; requests fall back to no body
            self.openapi_errors[fn.name] = f"{type(exc).__name__}: {str(exc)[:300]}"
            return {}

    def context(self, path_tenant: str = TENANT_A, body_tenant: str | None = None) -> RequestContext:
        return RequestContext(
            path_tenant=path_tenant,
            body_tenant=body_tenant or path_tenant,
            customer_id=self.customer_id,
            subscription_id=self.subscription_id,
            key_id=self.key_ids.get("victim", "key_0000000000000000"),
        )


def handler_modules() -> list[str]:
    return [f"functions.{spec.name}.handler" for spec in resources.FUNCTIONS]


def forget_handler_modules() -> None:
    """Drop imported handler modules, so the stack imports them under its own environment."""
    for name in handler_modules():
        sys.modules.pop(name, None)


def environment_snapshot() -> dict[str, str]:
    return dict(os.environ)


def restore_environment(saved: dict[str, str]) -> None:
    for key in list(os.environ):
        if key not in saved:
            del os.environ[key]
    os.environ.update(saved)
