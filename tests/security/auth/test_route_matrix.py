"""Route x credential matrix over the local stack's gateway with the real Lambda authorizer: for every
route of `resources.routes()` and each credential (none, operator token, own tenant key, other tenant's
key, revoked key), the status class the route must answer. Every refused request must change nothing
(all three tables and the usage queue are compared before and after), and a tenant key naming another
tenant in the path or body is a 403.

The matrix of statuses actually returned is written as Markdown to $SECURITY_MATRIX_OUT (if set) when
the module finishes, for the issue's closing note."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from billing_platform.resources import Auth, RouteSpec
from tests.security.harness import (
    CREDENTIALS,
    ROUTE_IDS,
    TENANT_A,
    TENANT_B,
    Credential,
    PlannedRequest,
    SecurityStack,
    plan_request,
    route_by_id,
)

pytestmark = pytest.mark.xdist_group("security_stack")

# Denied cells first, so the state they must not change is the state before any allowed call.
ORDER = (Credential.NONE, Credential.REVOKED, Credential.OTHER, Credential.OWN, Credential.OPERATOR)


@dataclass(frozen=True)
class Expectation:
    label: str  # what the matrix promises for the cell
    statuses: tuple[int, ...] = ()  # exact statuses, or () for "allowed": any status but 401/403/5xx

    def met_by(self, status: int) -> bool:
        if self.statuses:
            return status in self.statuses
        return status < 500 and status not in (401, 403)


UNAUTHENTICATED = Expectation("401", (401,))
FORBIDDEN = Expectation("403", (403,))
ALLOWED = Expectation("allowed")


def expected(route: RouteSpec, credential: Credential, planned: PlannedRequest) -> Expectation:
    if route.auth is Auth.PUBLIC:
        return ALLOWED  # the handler decides (the webhook's signature check is tested on its own)
    if route.auth is Auth.OPERATOR:
        if credential is Credential.OPERATOR:
            return ALLOWED
        return UNAUTHENTICATED if credential is Credential.NONE else FORBIDDEN
    # Tenant routes: only a live tenant key passes the authorizer; the handler then checks the tenant.
    if credential in (Credential.NONE, Credential.REVOKED, Credential.OPERATOR):
        return UNAUTHENTICATED
    if route.scope == "admin":
        return FORBIDDEN  # the matrix's tenant keys have the `use` scope: admin routes are not theirs
    if credential is Credential.OTHER and planned.names_tenant:
        return FORBIDDEN
    return ALLOWED


@dataclass
class Cell:
    status: int
    ok: bool
    note: str = ""


MATRIX: dict[str, dict[Credential, Cell]] = {}


def _render(matrix: dict[str, dict[Credential, Cell]]) -> str:
    header = "| route | auth | " + " | ".join(c.value for c in CREDENTIALS) + " |"
    lines = [header, "|" + "---|" * (len(CREDENTIALS) + 2)]
    for rid in ROUTE_IDS:
        if rid not in matrix:
            continue
        route, _fn = route_by_id(rid)
        cells = []
        for credential in CREDENTIALS:
            cell = matrix[rid].get(credential)
            cells.append("" if cell is None else f"{cell.status}{'' if cell.ok else ' ✗'}")
        lines.append(f"| `{rid}` | {route.auth.value} | " + " | ".join(cells) + " |")
    failures = [
        f"- `{rid}` with {credential.value}: {cell.note}"
        for rid, row in matrix.items()
        for credential, cell in row.items()
        if not cell.ok
    ]
    legend = (
        f"\nTarget tenant `{TENANT_A}`; other tenant `{TENANT_B}`. Expected: no credential -> 401 on operator and "
        "tenant routes; operator token -> allowed on operator routes, 401 on tenant routes (not a tenant key); "
        "tenant keys -> 403 on operator routes and on admin-scoped tenant routes (the keys are `use` keys); "
        "own key -> allowed on other tenant routes; other tenant's key naming "
        f"`{TENANT_A}` -> 403; revoked key -> 401 (403 on operator routes). ✗ = not as expected.\n"
    )
    return "\n".join(lines) + "\n" + legend + ("\nUnexpected cells:\n" + "\n".join(failures) + "\n" if failures else "")


@pytest.fixture(scope="module", autouse=True)
def _write_matrix() -> Iterator[None]:
    yield
    if not MATRIX:
        return
    table = _render(MATRIX)
    print("\n" + table)
    out = os.environ.get("SECURITY_MATRIX_OUT")
    if out:
        Path(out).write_text("# Route x credential matrix (local stack, real authorizer)\n\n" + table, encoding="utf-8")


@pytest.mark.parametrize("rid", ROUTE_IDS)
def test_route_answers_each_credential_as_the_matrix_says(security_stack: SecurityStack, rid: str) -> None:
    route, fn = route_by_id(rid)
    openapi = security_stack.openapi(fn)
    row: dict[Credential, Cell] = {}
    MATRIX[rid] = row
    problems: list[str] = []
    for credential in ORDER:
        planned = plan_request(route, openapi, security_stack.context())
        expectation = expected(route, credential, planned)
        before = security_stack.snapshot()
        response = security_stack.call(planned.method, planned.target, planned.body, credential=credential)
        after = security_stack.snapshot()
        notes: list[str] = []
        if not expectation.met_by(response.status):
            notes.append(f"answered {response.status}, expected {expectation.label}: {response.body[:300]!r}")
        if expectation is not ALLOWED:
            changes = before.diff(after)
            if changes:
                notes.append("a refused request changed state: " + "; ".join(changes[:5]))
            body = _json_or_none(response.body)
            if not (isinstance(body, dict) and body.get("code") and body.get("message")):
                notes.append(f"refusal without a JSON {{code, message}} body: {response.body[:200]!r}")
        elif credential is Credential.OTHER:
            # A key of tenant B on a route that names no tenant acts for B: tenant A must be untouched.
            leaked = [c for c in before.diff(after) if TENANT_A in c]
            if leaked:
                notes.append("another tenant's key changed tenant A's data: " + "; ".join(leaked[:5]))
        row[credential] = Cell(response.status, not notes, " / ".join(notes))
        problems += [f"{credential.value}: {n}" for n in notes]
    assert not problems, f"{rid}:\n" + "\n".join(problems)


@pytest.mark.parametrize("rid", [rid for rid in ROUTE_IDS if route_by_id(rid)[0].auth is Auth.TENANT])
def test_tenant_key_naming_another_tenant_in_the_body_only_is_refused(security_stack: SecurityStack, rid: str) -> None:
    """The path names the caller's own tenant (or none) but the body names another: still 403, no write."""
    route, fn = route_by_id(rid)
    openapi = security_stack.openapi(fn)
    planned = plan_request(route, openapi, security_stack.context(path_tenant=TENANT_A, body_tenant=TENANT_B))
    if not (isinstance(planned.body, dict) and "tenant_id" in planned.body):
        pytest.skip(f"{rid} takes no tenant_id in its body")
    before = security_stack.snapshot()
    response = security_stack.call(planned.method, planned.target, planned.body, credential=Credential.OWN)
    changes = before.diff(security_stack.snapshot())
    assert response.status == 403, (response.status, response.body[:300])
    assert not changes, changes


def _json_or_none(body: bytes) -> object:
    import json

    try:
        return json.loads(body)
    except ValueError:
        return None


def test_an_idempotency_key_reused_by_another_tenant_replays_nothing_across_tenants(
    security_stack: SecurityStack,
) -> None:
    """Tenant B sending the idempotency key tenant A used must get its own consumption, not A's answer
    (which would leak A's quota) and must leave A's counters alone."""
    sec = security_stack
    key = "shared-idempotency-key-0001"

    def consume(tenant: str, credential: Credential, quantity: int) -> dict[str, object]:
        body = {"tenant_id": tenant, "resource_type": "api_calls", "quantity": quantity, "idempotency_key": key}
        response = sec.call("POST", "/v1/entitlements/consume", body, credential=credential)
        assert response.status in (200, 402), (response.status, response.body[:300])
        return dict(response.json())

    first_a = consume(TENANT_A, Credential.OWN, 3)
    state_a = sec.call("GET", f"/v1/tenants/{TENANT_A}/entitlements", credential=Credential.OWN).json()
    answer_b = consume(TENANT_B, Credential.OTHER, 1)
    assert answer_b.get("tenant_id", TENANT_B) == TENANT_B, answer_b
    assert answer_b != first_a
    assert sec.call("GET", f"/v1/tenants/{TENANT_A}/entitlements", credential=Credential.OWN).json() == state_a
