"""The whole metered-billing loop on the local stack (`python -m local_stack` in a subprocess, meter
reporter every 2 s), observed with the installed `billing-admin` console script: a customer and a pro
subscription through the operator API (the local provider's signed webhooks provision them), usage POSTed
with a tenant API key, the SQS consumer, the stream aggregator, the scheduled meter reporter, and late
usage in an already reported hour reported as its own delta."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_usage_e2e import Stack, _read_until_ready, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local_stack_meter")]

ROOT = Path(__file__).resolve().parents[2]
BILLING_ADMIN = Path(sys.executable).with_name("billing-admin")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_ENDPOINT_URL", "STRIPE_"))}
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "local_stack", "--port", "0", "--log-level", "WARNING", "--meter-every", "2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield _read_until_ready(proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def billing_admin(stack: Stack, *args: str) -> tuple[int, Any]:
    """The console script pip installed, pointed at the stack's emulators as its banner prints them,
    from a shell with no AWS configuration at all."""
    dynamodb = next(m.group(1) for line in stack.output if (m := re.search(r"DynamoDB Local: (http\S+)", line)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BILLING_", "USAGE_"))}
    command = [str(BILLING_ADMIN), "--json", "--dynamodb-endpoint", dynamodb, "--sqs-endpoint", stack.moto_url]
    done = subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else done.stderr


@pytest.mark.skipif(shutil.which(str(BILLING_ADMIN)) is None, reason="billing-admin is not installed in this venv")
def test_usage_reaches_stripe_meters_once_and_late_usage_as_a_delta(stack: Stack) -> None:
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

        return eventually(check, timeout=90)

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
