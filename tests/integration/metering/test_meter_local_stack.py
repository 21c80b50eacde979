"""The whole metered-billing loop on the local stack (`python -m local_stack` in a subprocess, meter
reporter every 2 s), observed with the installed `billing-admin` console script: a customer and a pro
subscription through the operator API (the local provider's signed webhooks provision them), usage POSTed
with a tenant API key, the SQS consumer, the stream aggregator, the scheduled meter reporter, and late
usage in an already reported hour reported as its own delta."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.factories.local_stack_process import LocalStackProcess, eventually

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("local_stack_meter"),
    pytest.mark.stack_args("--meter-every", "2"),
]

BILLING_ADMIN = Path(sys.executable).with_name("billing-admin")


def billing_admin(stack: LocalStackProcess, *args: str) -> tuple[int, Any]:
    """The console script pip installed, pointed at the stack's emulators as its banner prints them,
    from a shell with no AWS configuration at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BILLING_", "USAGE_"))}
    endpoints = ["--dynamodb-endpoint", stack.banner.dynamodb_url, "--sqs-endpoint", stack.banner.moto_url]
    command = [str(BILLING_ADMIN), "--json", *endpoints]
    done = subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else done.stderr


@pytest.mark.skipif(shutil.which(str(BILLING_ADMIN)) is None, reason="billing-admin is not installed in this venv")
def test_usage_reaches_stripe_meters_once_and_late_usage_as_a_delta(stack: LocalStackProcess) -> None:
    tenant = f"mtr{str(int(time.time() * 1000))[-8:]}"
    status, body = stack.request("POST", "/v1/customers", {"email": "ops@example.com", "tenant_id": tenant})
    assert status == 201, body
    status, body = stack.request("POST", "/v1/subscriptions", {"tenant_id": tenant, "price_id": "price_pro_monthly"})
    assert status == 201, body
    status, created = stack.request("POST", f"/v1/tenants/{tenant}/api-keys", {"name": "meter e2e"})
    assert status == 201, created
    key = created["secret"]

    def metered_tokens(expected: str) -> Any:
        def check() -> tuple[bool, Any]:
            code, shown = billing_admin(stack, "tenant", "show", tenant, "--days", "1")
            if code != 0:
                return False, shown
            tokens = shown["metered"].get("tokens") or {}
            done = Decimal(tokens.get("reported", "0")) == Decimal(expected) and tokens.get("open_claims") == 0
            return done, shown

        return eventually(check, 90, interval=0.5)

    status, body = stack.request(
        "POST",
        "/v1/usage",
        {"records": [{"resource_type": "tokens", "quantity": 40}, {"resource_type": "tokens", "quantity": "2.5"}]},
        token=key,
    )
    assert status == 202, body
    shown = metered_tokens("42.5")
    assert shown["subscription"]["plan_id"] == "pro"
    assert Decimal(shown["usage"]["tokens"]["total"]) == Decimal("42.5")

    status, body = stack.request(
        "POST", "/v1/usage", {"records": [{"resource_type": "tokens", "quantity": 7.5}]}, token=key
    )
    assert status == 202, body
    metered_tokens("50")

    code, queues = billing_admin(stack, "dlq", "status")
    assert code == 0
    assert queues["usage_dlq"]["visible"] == 0
