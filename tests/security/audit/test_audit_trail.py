"""Every mutation route writes an audit entry (who, what, when, request id, before/after) that the
operator can read back per tenant at GET /v1/tenants/{tenant_id}/audit; neither the entries nor any log
line of any function carry a secret (tenant keys, operator token, Stripe keys, webhook secret) or a card
number, whichever route was called with whichever credential."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

from billing_platform.resources import Auth
from tests.factories import stripe as stripe_factory
from tests.security.harness import (
    CARD_NUMBER,
    CREDENTIALS,
    ROUTE_IDS,
    TENANT_A,
    Credential,
    SecurityStack,
    capture_all_logs,
    needs_audit,
    plan_request,
    route_by_id,
)

pytestmark = pytest.mark.xdist_group("security_stack")

AUDITED_ROUTES = [rid for rid in ROUTE_IDS if needs_audit(route_by_id(rid)[0]) and "webhooks" not in rid]
# A plan change needs another price than the one subscribed to.
PRICE_FOR = {"PATCH": "price_enterprise_monthly"}


def _forbidden_strings(sec: SecurityStack) -> dict[str, str]:
    found = dict(sec.secrets)
    found["card number"] = CARD_NUMBER
    found["card number (digits)"] = CARD_NUMBER.replace(" ", "")
    return found


def _leaks(text: str, sec: SecurityStack) -> list[str]:
    return [name for name, value in _forbidden_strings(sec).items() if value and value in text]


def _new_audit_items(sec: SecurityStack, before: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen = {(i["pk"]["S"], i["sk"]["S"]) for i in before}
    return [i for i in sec.audit_items() if (i["pk"]["S"], i["sk"]["S"]) not in seen]


def _entity_with_limit(sec: SecurityStack) -> str:
    """A fresh entity of tenant A with a limit on api_calls, for the routes that change or remove one."""
    entity_id = f"user_{uuid.uuid4().hex[:10]}"
    created = sec.call("POST", f"/v1/tenants/{TENANT_A}/entities", {"id": entity_id}, credential=Credential.OPERATOR)
    assert created.status == 201, created.body
    limited = sec.call(
        "PUT",
        f"/v1/tenants/{TENANT_A}/entities/{entity_id}/limits/api_calls",
        {"kind": "absolute", "amount": "100"},
        credential=Credential.OPERATOR,
    )
    assert limited.status == 200, limited.body
    return entity_id


def _assert_entry_shape(item: dict[str, Any], *, method: str) -> None:
    assert item["actor"]["S"], "who"
    assert item["action"]["S"], "what"
    assert datetime.fromisoformat(item["at"]["S"]).tzinfo is not None, "when (tz-aware UTC)"
    before = json.loads(item.get("before", {}).get("S", "null"))
    after = json.loads(item.get("after", {}).get("S", "null"))
    if method == "POST":
        assert after is not None, "a creation records the state after"
    elif method == "DELETE":
        assert before is not None, "a deletion records the state before"
    else:
        assert before is not None, "a change records the state before"
        assert after is not None, "a change records the state after"


@pytest.mark.parametrize("rid", AUDITED_ROUTES)
def test_mutation_route_writes_an_audit_entry_readable_per_tenant(security_stack: SecurityStack, rid: str) -> None:
    sec = security_stack
    route, fn = route_by_id(rid)
    ctx = sec.context()
    ctx.price_id = PRICE_FOR.get(route.method, ctx.price_id)
    if rid == "DELETE /v1/tenants/{tenant_id}/api-keys/{key_id}":
        created = sec.call(
            "POST", f"/v1/tenants/{TENANT_A}/api-keys", {"name": "audited"}, credential=Credential.OPERATOR
        )
        ctx.key_id = created.json()["id"]
    if rid == "DELETE /v1/tenants/{tenant_id}/webhook-endpoints/{endpoint_id}":
        created = sec.call(
            "POST",
            f"/v1/tenants/{TENANT_A}/webhook-endpoints",
            {"url": "https://hooks.example.com/audited"},
            credential=Credential.OPERATOR,
        )
        ctx.endpoint_id = created.json()["id"]
    if rid == "DELETE /v1/tenants/{tenant_id}/portal-tokens/{token_id}":
        created = sec.call(
            "POST", f"/v1/tenants/{TENANT_A}/portal-tokens", {"ttl_seconds": 600}, credential=Credential.OPERATOR
        )
        ctx.token_id = created.json()["id"]
    if rid == "DELETE /v1/tenants/{tenant_id}/grants/{grant_id}":
        created = sec.call(
            "POST",
            f"/v1/tenants/{TENANT_A}/grants",
            {"resource_type": "api_calls", "amount": "5"},
            credential=Credential.OPERATOR,
        )
        ctx.grant_id = created.json()["grant_id"]
    if "{entity_id}" in route.path or rid.endswith("/{key_id}/entity"):
        ctx.entity_id = _entity_with_limit(sec)
    if rid == "PUT /v1/tenants/{tenant_id}/api-keys/{key_id}/entity":
        created = sec.call(
            "POST", f"/v1/tenants/{TENANT_A}/api-keys", {"name": "bound"}, credential=Credential.OPERATOR
        )
        ctx.key_id = created.json()["id"]
    planned = plan_request(route, sec.openapi(fn), ctx)
    # Bodies the schema alone does not make meaningful: a new entity id, an absolute limit, an existing entity.
    if rid == "POST /v1/tenants/{tenant_id}/entities":
        planned = replace(planned, body={"id": f"team_{uuid.uuid4().hex[:10]}"})
    if rid.startswith("PUT ") and rid.endswith("/limits/{resource_type}"):
        planned = replace(planned, body={"kind": "absolute", "amount": "50"})
    if rid == "PUT /v1/tenants/{tenant_id}/api-keys/{key_id}/entity":
        planned = replace(planned, body={"entity_id": ctx.entity_id})
    before = sec.audit_items()
    with capture_all_logs() as logs:
        response = sec.call(planned.method, planned.target, planned.body, credential=Credential.OPERATOR)
        if response.status == 409:
            # Tenant A already has one (a customer): create for a tenant of its own instead.
            fresh = f"t_sec_{uuid.uuid4().hex[:10]}"
            planned = plan_request(route, sec.openapi(fn), sec.context(path_tenant=fresh))
            response = sec.call(planned.method, planned.target, planned.body, credential=Credential.OPERATOR)
    assert 200 <= response.status < 300, f"could not exercise {rid}: {response.status} {response.body[:300]!r}"
    invocation = sec.last_invocation(fn.name)
    assert invocation is not None
    request_id = invocation.event["requestContext"]["requestId"]

    new = _new_audit_items(sec, before)
    mine = [i for i in new if i.get("request_id", {}).get("S") == request_id]
    assert mine, f"{rid} wrote no audit entry under request id {request_id} (new entries: {new})"
    for item in mine:
        _assert_entry_shape(item, method=route.method)
        assert item["actor"]["S"].startswith("operator:"), item["actor"]
        assert not _leaks(json.dumps(item), sec), f"audit entry carries {_leaks(json.dumps(item), sec)}"

    entry_tenant = mine[0]["tenant_id"]["S"]
    listed = sec.call("GET", f"/v1/tenants/{entry_tenant}/audit?limit=100", credential=Credential.OPERATOR)
    assert listed.status == 200, listed.body
    listed_ids = {e["id"] for e in listed.json()["items"]}
    assert {i["entry_id"]["S"] for i in mine} <= listed_ids
    assert all(e["tenant_id"] == entry_tenant for e in listed.json()["items"]), "another tenant's entries leaked"
    assert not _leaks("\n".join(logs.lines), sec), f"log lines carry {_leaks(chr(10).join(logs.lines), sec)}"


def test_webhook_effect_writes_an_audit_entry(security_stack: SecurityStack) -> None:
    sec = security_stack
    if not sec.subscription_id.startswith("sub_") or sec.subscription_id == "sub_unknown":
        pytest.fail("no subscription of tenant A to change through a webhook (POST /v1/subscriptions failed)")
    now = int(time.time())

    def deliver(event_type: str, price_id: str, created: int) -> tuple[Any, dict[str, Any]]:
        obj = stripe_factory.subscription(
            sec.subscription_id,
            sec.customer_id,
            price_id,
            created=now - 60,
            period_start=now - 60,
            period_end=now + 30 * 86400,
            metadata={"tenant_id": TENANT_A},
        )
        evt = stripe_factory.event(event_type, obj, created=created)
        payload = stripe_factory.payload_of(evt)
        signature = stripe_factory.sign(payload, secret=sec.env["STRIPE_WEBHOOK_SECRET"])
        response = sec.call(
            "POST", "/v1/webhooks/stripe", raw=payload.encode(), headers={"Stripe-Signature": signature}
        )
        return response, evt

    # The first event makes the platform's own record of the subscription; the second changes it.
    first, _ = deliver("customer.subscription.created", "price_pro_monthly", now - 30)
    assert 200 <= first.status < 300, (first.status, first.body[:300])
    before = sec.audit_items()
    with capture_all_logs() as logs:
        response, evt = deliver("customer.subscription.updated", "price_enterprise_monthly", now)
    assert 200 <= response.status < 300, (response.status, response.body[:300])
    invocation = sec.last_invocation("stripe_webhook")
    assert invocation is not None
    ids = {invocation.event["requestContext"]["requestId"], evt["id"]}
    new = _new_audit_items(sec, before)
    mine = [i for i in new if i.get("request_id", {}).get("S") in ids]
    assert mine, f"the webhook's effect wrote no audit entry under {ids} (new entries: {new})"
    assert all(i["tenant_id"]["S"] == TENANT_A for i in mine)
    for item in mine:
        _assert_entry_shape(item, method="PATCH")
    text = "\n".join(logs.lines) + json.dumps(mine)
    assert not _leaks(text, sec), _leaks(text, sec)


def test_no_log_line_of_any_route_and_credential_carries_a_secret(security_stack: SecurityStack) -> None:
    """Every route with every credential (including refused ones, whose Authorization header is the
    secret), a tampered webhook and a malformed body, all under log capture at DEBUG."""
    sec = security_stack
    with capture_all_logs() as logs:
        for rid in ROUTE_IDS:
            route, fn = route_by_id(rid)
            planned = plan_request(route, sec.openapi(fn), sec.context())
            for credential in CREDENTIALS:
                sec.call(planned.method, planned.target, planned.body, credential=credential)
            if planned.body is not None:
                # Secrets inside a body the handler rejects: error messages must not echo them back.
                hostile = {"tenant_id": TENANT_A, "email": sec.secrets["tenant A key"], "card": CARD_NUMBER}
                credential = Credential.OPERATOR if route.auth is Auth.OPERATOR else Credential.OWN
                response = sec.call(planned.method, planned.target, hostile, credential=credential)
                assert not _leaks(response.body.decode(errors="replace"), sec), (rid, response.body[:300])
        sec.call(
            "POST",
            "/v1/webhooks/stripe",
            raw=b'{"id": "evt_x", "type": "customer.updated"}',
            headers={"Stripe-Signature": f"t={int(time.time())},v1={'0' * 64}"},
        )
    assert logs.lines, "log capture saw nothing: the recorder is not attached to the functions' loggers"
    leaked = {
        name: [line[:200] for line in logs.lines if value in line][:2]
        for name, value in _forbidden_strings(sec).items()
        if any(value in line for line in logs.lines)
    }
    assert not leaked, leaked
