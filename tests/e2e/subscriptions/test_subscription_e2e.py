"""The local stack over HTTP (`python -m local_stack` in a subprocess): an operator creates a customer
and a subscription; the local billing provider sends signed webhooks to /v1/webhooks/stripe; the
tenant's entitlements end up provisioned, follow an upgrade, and fall back to free on cancellation."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.factories.local_stack_process import LocalStackProcess, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local_stack_subscriptions")]

WEBHOOK_TIMEOUT = 20.0  # webhooks arrive asynchronously, as Stripe's do


def test_subscription_provisions_entitlements_through_signed_webhooks(stack: LocalStackProcess) -> None:
    tenant = f"t_e2e_{int(time.time())}"

    status, customer = stack.request("POST", "/v1/customers", {"tenant_id": tenant, "email": "e2e@example.com"})
    assert status == 201, customer
    status, sub = stack.request("POST", "/v1/subscriptions", {"tenant_id": tenant, "price_id": "price_pro_monthly"})
    assert status == 201, sub
    assert (sub["customer_id"], sub["plan_id"], sub["status"]) == (customer["id"], "pro", "active")

    status, key = stack.request("POST", f"/v1/tenants/{tenant}/api-keys", {"name": "e2e"})
    assert status == 201, key
    tenant_key = key["secret"]

    def plan_is(plan_id: str, *, subscribed: bool = True) -> Callable[[], tuple[bool, dict[str, Any]]]:
        def check() -> tuple[bool, dict[str, Any]]:
            status, body = stack.request("GET", f"/v1/tenants/{tenant}/entitlements", token=tenant_key)
            assert status == 200, body
            return body["subscribed"] is subscribed and body["plan_id"] == plan_id, body

        return check

    provisioned = eventually(plan_is("pro"), WEBHOOK_TIMEOUT)
    quotas = {q["resource_type"]: q for q in provisioned["quotas"]}
    assert quotas["executions"]["limit"] == "10000"
    assert provisioned["period_end"] == sub["current_period_end"].replace("Z", "+00:00")

    status, changed = stack.request("PATCH", f"/v1/subscriptions/{sub['id']}", {"price_id": "price_enterprise_monthly"})
    assert (status, changed["plan_id"]) == (200, "enterprise")
    upgraded = eventually(plan_is("enterprise"), WEBHOOK_TIMEOUT)
    assert upgraded["features"]["sso"] is True

    status, canceled = stack.request("DELETE", f"/v1/subscriptions/{sub['id']}?immediate=true")
    assert (status, canceled["status"]) == (200, "canceled")
    ended = eventually(plan_is("free", subscribed=False), WEBHOOK_TIMEOUT)  # no longer subscribed
    assert ended["status"] == "canceled"

    # A forged webhook is refused by the same route the provider's signed ones pass through.
    status, body = stack.request("POST", "/v1/webhooks/stripe", {"id": "evt_forged", "type": "invoice.paid"})
    assert (status, body["code"]) == (400, "invalid_signature")


def test_openapi_document_lists_the_subscription_and_webhook_routes(stack: LocalStackProcess) -> None:
    status, document = stack.request("GET", "/openapi.json")
    assert status == 200
    for path in ("/v1/customers", "/v1/subscriptions/{subscription_id}", "/v1/webhooks/stripe"):
        assert path in document["paths"], sorted(document["paths"])
    assert set(document["paths"]["/v1/subscriptions/{subscription_id}"]) >= {"get", "patch", "delete"}
