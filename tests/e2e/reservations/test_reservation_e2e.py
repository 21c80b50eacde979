"""Reservations on the local stack (`python -m local_stack` in a subprocess), over HTTP with a tenant API
key: reserve, settle (and its retry), and the settled amount, not the estimate, reaches the quota and,
through the real usage queue, consumer, stream and aggregator, the usage trend exactly once."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from tests.factories.local_stack_process import LocalStackProcess, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local_stack_reservations")]

PIPELINE_TIMEOUT = 60.0
BASE = "/v1/entitlements/reservations"


def test_a_settled_reservation_meters_its_actual_once(stack: LocalStackProcess) -> None:
    tenant = f"e2e_r{str(int(time.time() * 1000))[-8:]}"
    status, created = stack.request("POST", f"/v1/tenants/{tenant}/api-keys", {"name": "reservations e2e"})
    assert status == 201, created
    key = created["secret"]

    status, held = stack.request(
        "POST", BASE, {"tenant_id": tenant, "resource_type": "tokens", "estimate": "4000"}, token=key
    )
    assert status == 201, held
    rid = held["reservation_id"]
    status, quota = stack.request("GET", f"/v1/tenants/{tenant}/entitlements", token=key)
    tokens = {q["resource_type"]: q for q in quota["quotas"]}["tokens"]
    assert (status, tokens["used"]) == (200, "4000")

    for _attempt in range(2):  # the retry answers the same and meters nothing more
        status, settled = stack.request("POST", f"{BASE}/{rid}/settle", {"quantity": "1234"}, token=key)
        assert (status, settled["state"], settled["charged"]) == (200, "settled", "1234"), settled
    status, quota = stack.request("GET", f"/v1/tenants/{tenant}/entitlements", token=key)
    assert {q["resource_type"]: q for q in quota["quotas"]}["tokens"]["used"] == "1234"

    def trend() -> tuple[bool, Any]:
        status, body = stack.request("GET", f"/v1/tenants/{tenant}/usage?resource_type=tokens&days=1", token=key)
        assert status == 200, body
        return Decimal(body["total"]) == Decimal(1234), body

    eventually(trend, PIPELINE_TIMEOUT, interval=0.5, context=lambda: "\n".join(stack.output[:80]))
    time.sleep(6)  # past the consumer's batching window: a second record would have landed by now
    _done, body = trend()
    assert Decimal(body["total"]) == Decimal(1234)
