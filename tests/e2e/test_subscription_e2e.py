"""The local stack over HTTP (`python -m local_stack` in a subprocess): an operator creates a customer
and a subscription; the local billing provider sends signed webhooks to /v1/webhooks/stripe; the
tenant's entitlements end up provisioned, follow an upgrade, and fall back to free on cancellation."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local_stack_subscriptions")]

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 90.0


@dataclass
class Stack:
    base_url: str
    operator_token: str

    def request(self, method: str, path: str, body: Any = None, *, token: str | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {token or self.operator_token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


def _read_until_ready(proc: subprocess.Popen[str]) -> tuple[str, str]:
    # A reader thread, not select(): the text wrapper buffers several lines behind one readable event.
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout

    def pump() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    token = None
    seen: list[str] = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if match := re.search(r"operator token: (\S+)", line):
            token = match.group(1)
        if match := re.match(r"READY (\S+)", line):
            assert token is not None, "".join(seen)
            return match.group(1), token
    raise AssertionError("local stack did not start:\n" + "".join(seen[-40:]))


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_ENDPOINT_URL", "STRIPE_"))}
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "local_stack", "--port", "0", "--log-level", "WARNING"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base_url, token = _read_until_ready(proc)
        yield Stack(base_url, token)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll until `check` returns a truthy value (webhooks arrive asynchronously, as Stripe's do)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"condition not reached; last value: {last!r}")


def test_subscription_provisions_entitlements_through_signed_webhooks(stack: Stack) -> None:
    tenant = f"t_e2e_{int(time.time())}"

    status, customer = stack.request("POST", "/v1/customers", {"tenant_id": tenant, "email": "e2e@example.com"})
    assert status == 201, customer
    status, sub = stack.request("POST", "/v1/subscriptions", {"tenant_id": tenant, "price_id": "price_pro_monthly"})
    assert status == 201, sub
    assert (sub["customer_id"], sub["plan_id"], sub["status"]) == (customer["id"], "pro", "active")

    status, key = stack.request("POST", f"/v1/tenants/{tenant}/api-keys", {"name": "e2e"})
    assert status == 201, key
    tenant_key = key["secret"]

    def plan() -> dict[str, Any] | None:
        status, body = stack.request("GET", f"/v1/tenants/{tenant}/entitlements", token=tenant_key)
        assert status == 200, body
        return body if body["subscribed"] else None

    def plan_is(plan_id: str) -> Callable[[], dict[str, Any] | None]:
        def check() -> dict[str, Any] | None:
            body = plan()
            return body if body and body["plan_id"] == plan_id else None

        return check

    provisioned = eventually(plan_is("pro"))
    quotas = {q["resource_type"]: q for q in provisioned["quotas"]}
    assert quotas["executions"]["limit"] == "10000"
    assert provisioned["period_end"] == sub["current_period_end"].replace("Z", "+00:00")

    status, changed = stack.request("PATCH", f"/v1/subscriptions/{sub['id']}", {"price_id": "price_enterprise_monthly"})
    assert (status, changed["plan_id"]) == (200, "enterprise")
    upgraded = eventually(plan_is("enterprise"))
    assert upgraded["features"]["sso"] is True

    status, canceled = stack.request("DELETE", f"/v1/subscriptions/{sub['id']}?immediate=true")
    assert (status, canceled["status"]) == (200, "canceled")
    eventually(plan_is("free"))

    # A forged webhook is refused by the same route the provider's signed ones pass through.
    status, body = stack.request("POST", "/v1/webhooks/stripe", {"id": "evt_forged", "type": "invoice.paid"})
    assert (status, body["code"]) == (400, "invalid_signature")


def test_openapi_document_lists_the_subscription_and_webhook_routes(stack: Stack) -> None:
    status, document = stack.request("GET", "/openapi.json")
    assert status == 200
    for path in ("/v1/customers", "/v1/subscriptions/{subscription_id}", "/v1/webhooks/stripe"):
        assert path in document["paths"], sorted(document["paths"])
    assert set(document["paths"]["/v1/subscriptions/{subscription_id}"]) >= {"get", "patch", "delete"}
