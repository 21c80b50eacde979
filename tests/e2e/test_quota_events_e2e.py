"""Threshold events end to end on the local stack (`python -m local_stack` in a subprocess): an operator
registers a tenant's webhook endpoint (a local HTTP receiver), the tenant consumes its plan's quota over
HTTP, and the 50 %, 80 % and 100 % events travel counter -> billing table stream -> quota_events -> the
stack's EventBridge bus -> rule -> webhook queue -> webhook_delivery -> the receiver, each once, signed
with the endpoint's secret (verified with the stripe SDK)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from billing_platform import resources
from tests.factories.local_stack_process import LocalStackProcess, eventually
from tests.factories.webhook_receiver import Receiver, webhook_receiver

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local_stack_events")]

DELIVERY_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStackProcess]:
    yield from LocalStackProcess.running("--log-level", "WARNING")


def consume(stack: LocalStackProcess, key: str, tenant: str, quantity: int) -> tuple[int, dict[str, object]]:
    body = {"tenant_id": tenant, "resource_type": "api_calls", "quantity": quantity}
    status, answer = stack.request("POST", "/v1/entitlements/consume", body, token=key)
    return status, answer


def thresholds(receiver: Receiver) -> list[str]:
    return [json.loads(r.body)["data"]["threshold_percent"] for r in receiver.received]


def test_threshold_events_reach_the_tenants_endpoint_signed_and_once(stack: LocalStackProcess) -> None:
    tenant = f"e2e_ev{str(int(time.time() * 1000))[-8:]}"
    status, created = stack.request("POST", f"/v1/tenants/{tenant}/api-keys", {"name": "events e2e"})
    assert status == 201, created
    key = created["secret"]
    with webhook_receiver() as receiver:
        status, endpoint = stack.request("POST", f"/v1/tenants/{tenant}/webhook-endpoints", {"url": receiver.url})
        assert status == 201, endpoint
        secret = endpoint["secret"]
        # The free plan: 1,000 api_calls a month, hard, thresholds 50 / 80 / 100 %.
        for quantity in (400, 200, 250, 150):
            status, answer = consume(stack, key, tenant, quantity)
            assert (status, answer["allowed"]) == (200, True), answer
        assert consume(stack, key, tenant, 1)[0] == 402

        eventually(
            lambda: (len(receiver.received) >= 3, thresholds(receiver)),
            DELIVERY_TIMEOUT,
            context=lambda: "\n".join(stack.output[-30:]),
        )
        time.sleep(3)  # anything extra (a duplicate) would arrive within the pipeline's batching windows
        received = list(receiver.received)
        assert sorted(thresholds(receiver), key=float) == ["50", "80", "100"]
        for delivery in received:
            assert delivery.signature_valid(secret)
            event = json.loads(delivery.body)
            assert event["type"] == resources.QUOTA_THRESHOLD_CROSSED
            data = event["data"]
            assert (data["tenant_id"], data["resource_type"], data["limit"], data["plan_id"]) == (
                tenant,
                "api_calls",
                "1000",
                "free",
            )
            assert float(data["used"]) >= float(data["threshold_percent"]) * 10
            assert delivery.headers["Billing-Event-Id"] == event["id"] == data["event_id"]
        assert len({json.loads(r.body)["id"] for r in received}) == 3
