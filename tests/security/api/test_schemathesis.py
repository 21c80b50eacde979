"""Schemathesis against the OpenAPI document the local stack serves at /openapi.json: every operation,
valid and invalid (negative) data, with the credential each route needs (operator token, tenant A's
key; tenant routes get tenant A in the path half of the time). No 5xx and no response that violates the
documented schema. Failures are collected per operation and reported together."""

from __future__ import annotations

import contextlib
import re
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from billing_platform import resources
from billing_platform.resources import Auth, RouteSpec
from tests.security.harness import TENANT_A, Credential, SecurityStack

pytestmark = pytest.mark.xdist_group("security_stack")

# Small on purpose: ~20 operations x 2 modes x this many requests (~300 requests) keeps the run to ~15 s.
MAX_EXAMPLES = 6


def _route_for(method: str, path: str) -> RouteSpec | None:
    for route, _fn in resources.routes():
        if route.method == method.upper() and route.path == path:
            return route
    return None


def test_served_openapi_documents_every_route(security_stack: SecurityStack) -> None:
    response = requests.get(f"{security_stack.stack.base_url}/openapi.json", timeout=30)
    assert response.status_code == 200
    paths = response.json().get("paths", {})
    missing = [
        f"{route.method} {route.path}"
        for route, _fn in resources.routes()
        if route.method.lower() not in (paths.get(route.path) or {})
    ]
    assert not missing, f"routes missing from /openapi.json: {missing}; openapi errors: {security_stack.openapi_errors}"


def test_schemathesis_finds_no_server_error_and_no_schema_violation(security_stack: SecurityStack) -> None:
    base_url = security_stack.stack.base_url
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    session = requests.Session()
    failures: list[str] = []
    exercised: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        route = _route_for(operation.method, operation.path)
        if route is None:
            failures.append(
                f"{operation.method.upper()} {operation.path}: documented but not a route of resources.routes()"
            )
            continue
        auth = {Auth.OPERATOR: Credential.OPERATOR, Auth.TENANT: Credential.OWN, Auth.PUBLIC: Credential.NONE}[
            route.auth
        ]
        header = security_stack.headers.get(auth)
        headers = {"Authorization": header} if header else {}
        label = f"{route.method} {route.path}"
        exercised.append(label)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += _run(operation, mode, route, base_url, session, headers, label)
    assert exercised, "the served document has no operations"
    assert not failures, f"{len(failures)} schemathesis failures:\n" + "\n".join(failures[:40])


def _run(
    operation: Any,
    mode: GenerationMode,
    route: RouteSpec,
    base_url: str,
    session: requests.Session,
    headers: dict[str, str],
    label: str,
) -> list[str]:
    found: list[str] = []
    seen: set[str] = set()
    counter = [0]

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        counter[0] += 1
        if route.auth is Auth.TENANT and "tenant_id" in (case.path_parameters or {}) and counter[0] % 2:
            # Half the cases act on the key's own tenant, so the handler runs past the tenant check.
            case.path_parameters["tenant_id"] = TENANT_A
        response = case.call(base_url=base_url, session=session, headers=headers)
        try:
            case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis raises a FailureGroup
            text = re.sub(r"\s+", " ", str(exc))
            # One report per operation, mode, status and kind of failure (ST101 server error, ST108 ...).
            key = f"{response.status_code} {sorted(set(re.findall(r'ST[0-9]{3}', text)))}"
            if key in seen:
                return
            seen.add(key)
            found.append(
                f"{label} [{mode.value}] {response.status_code}: {text[:400]}\n"
                f"    request: path={case.path_parameters} query={case.query} body={str(case.body)[:200]}\n"
                f"    response: {response.text[:300]}"
            )

    # Unsatisfiable: nothing to make invalid (no parameters, no body); the positive run covers it.
    with contextlib.suppress(Unsatisfiable):
        check()
    return found
