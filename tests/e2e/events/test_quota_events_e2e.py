"""Threshold and grant events end to end on the local stack (`python -m local_stack` in a subprocess): an
operator grants a tenant 500 api_calls on top of its plan and registers its webhook endpoint (a local HTTP
receiver); the tenant consumes over HTTP past its plan's 1,000 into the grant and then uses the grant up.
The 50 %, 80 % and 100 % events and the grant's depletion travel counter / grant item -> billing table
stream -> quota_events -> the stack's EventBridge bus -> rule -> webhook queue -> webhook_delivery -> the
receiver, each once, signed with the endpoint's secret (verified with the stripe SDK)."""

from __future__ import annotations

import json
import time

import pytest

from billing_platform import resources
from tests.factories.local_stack_process import LocalStackProcess, eventually
from tests.factories.webhook_receiver import Receiver, webhook_receiver

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local_stack_events")]

DELIVERY_TIMEOUT = 60.0


def consume(stack: LocalStackProcess, key: str, tenant: str, quantity: int) -> tuple[int, dict[str, object]]:
    body = {"tenant_id": tenant, "resource_type": "api_calls", "quantity": quantity}
    status, answer = stack.request("POST", "/v1/entitlements/consume", body, token=key)
    return status, answer


def thresholds(receiver: Receiver) -> list[str]:
    events = [json.loads(r.body) for r in receiver.received]
    return [e["data"]["threshold_percent"] for e in events if e["type"] == resources.QUOTA_THRESHOLD_CROSSED]


def test_threshold_and_grant_events_reach_the_tenants_endpoint_signed_and_once(stack: LocalStackProcess) -> None:
    tenant = f"e2e_ev{str(int(time.time() * 1000))[-8:]}"
    status, created = stack.request("POST", f"/v1/tenants/{tenant}/api-keys", {"name": "events e2e"})
    assert status == 201, created
    key = created["secret"]
    with webhook_receiver() as receiver:
        status, endpoint = stack.request("POST", f"/v1/tenants/{tenant}/webhook-endpoints", {"url": receiver.url})
        assert status == 201, endpoint
        secret = endpoint["secret"]
        status, grant = stack.request(
            "POST", f"/v1/tenants/{tenant}/grants", {"resource_type": "api_calls", "amount": "500"}
        )
        assert status == 201, grant
        # The free plan: 1,000 api_calls a month, hard, thresholds 50 / 80 / 100 %; then 500 from the grant.
        for quantity in (400, 200, 250, 150, 300, 200):
            status, answer = consume(stack, key, tenant, quantity)
            assert (status, answer["allowed"]) == (200, True), answer
        assert consume(stack, key, tenant, 1)[0] == 402

        eventually(
            lambda: (len(receiver.received) >= 4, [json.loads(r.body)["type"] for r in receiver.received]),
            DELIVERY_TIMEOUT,
            context=lambda: "\n".join(stack.output[-30:]),
        )
        time.sleep(3)  # anything extra (a duplicate) would arrive within the pipeline's batching windows
        received = list(receiver.received)
        assert len(received) == 4
        assert sorted(thresholds(receiver), key=float) == ["50", "80", "100"]
        for delivery in received:
            assert delivery.signature_valid(secret)
        (depleted,) = [json.loads(r.body) for r in received if json.loads(r.body)["type"] == resources.GRANT_DEPLETED]
        assert (depleted["data"]["tenant_id"], depleted["data"]["used"], depleted["data"]["remaining"]) == (
            tenant,
            "500",
            "0",
        )
        assert depleted["data"]["grant_id"] == grant["grant_id"]
        for delivery in received:
            event = json.loads(delivery.body)
            if event["type"] != resources.QUOTA_THRESHOLD_CROSSED:
                continue
            data = event["data"]
            assert (data["tenant_id"], data["resource_type"], data["limit"], data["plan_id"]) == (
                tenant,
                "api_calls",
                "1000",
                "free",
            )
            assert float(data["used"]) >= float(data["threshold_percent"]) * 10
            assert delivery.headers["Billing-Event-Id"] == event["id"] == data["event_id"]
        assert len({json.loads(r.body)["id"] for r in received}) == 4
