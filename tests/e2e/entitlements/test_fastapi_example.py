"""examples/fastapi_app.py (the design document's Application Setup) against the local stack
(`python -m local_stack` in a subprocess, free port): driven through FastAPI's TestClient, its tracked
usage goes through the stack's queue, consumer, stream and aggregator, and is read back both by the
example's own awaited `UsageAggregator` and by the platform's HTTP API."""

from __future__ import annotations

import importlib
import uuid
from decimal import Decimal
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient

from billing_platform import resources
from tests.conftest import reset_caches
from tests.factories.local_stack_process import LocalStackProcess, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local_stack_fastapi")]

PIPELINE_TIMEOUT = 60.0


@pytest.fixture
def example_env(stack: LocalStackProcess, env: pytest.MonkeyPatch) -> dict[str, str]:
    """The library pointed at the stack, as a service next to `make dev` would be."""
    sqs = boto3.client("sqs", endpoint_url=stack.banner.moto_url, region_name="us-east-1")
    values = {
        "AWS_ENDPOINT_URL_DYNAMODB": stack.banner.dynamodb_url,
        "AWS_ENDPOINT_URL_SQS": stack.banner.moto_url,
        resources.USAGE_QUEUE.env_var: sqs.get_queue_url(QueueName=resources.USAGE_QUEUE.local_name)["QueueUrl"],
        "USAGE_TRACKER_FLUSH_INTERVAL": "3600",  # only the shutdown flush sends: what the test proves
        **{spec.env_var: spec.local_name for spec in resources.TABLES},
    }
    for key, value in values.items():
        env.setenv(key, value)
    reset_caches()
    return values


def test_example_app_meters_usage_that_reaches_the_aggregates(stack: LocalStackProcess, example_env: Any) -> None:
    example = importlib.reload(importlib.import_module("examples.fastapi_app"))
    tenant = uuid.uuid4()
    # Onboarded through the platform's API (an API key makes the tenant known, on the default free plan).
    status, created = stack.request("POST", f"/v1/tenants/{tenant}/api-keys", {"name": "fastapi example"})
    assert status == 201, created
    key = created["secret"]
    app = example.create_app()
    with TestClient(app) as client:  # startup: tracker.start()
        customer = client.post("/customers", params={"tenant_id": str(tenant), "email": "dev@example.com"})
        assert customer.status_code == 200, customer.text
        assert customer.json()["customer_id"].startswith("cus_")
        for n in range(3):
            ran = client.post(f"/workflows/{uuid.UUID(int=n)}/execute", params={"tenant_id": str(tenant)})
            assert ran.status_code == 200, ran.text
        assert ran.json()["remaining"] == "97"  # the free plan's 100 executions
        answer = client.post("/llm", params={"tenant_id": str(tenant), "prompt": "abc"})
        assert (answer.status_code, answer.json()) == (200, {"answer": "cba"})
        assert app.state.usage_tracker.get_stats()["flushed"] == 0  # still buffered
    assert app.state.usage_tracker.get_stats()["flushed"] == 4  # shutdown: await tracker.stop()

    with TestClient(example.create_app()) as client:

        def totals() -> tuple[bool, Any]:
            got = {
                resource: client.get(f"/usage/{tenant}", params={"resource_type": resource, "days": 1}).json()
                for resource in ("executions", "tokens")
            }
            return {r: Decimal(t["total"]) for r, t in got.items()} == {"executions": 3, "tokens": 1000}, got

        trends = eventually(totals, PIPELINE_TIMEOUT, interval=0.5, context=lambda: "\n".join(stack.output[-40:]))
        assert trends["executions"]["tenant_id"] == str(tenant)

    status, body = stack.request("GET", f"/v1/tenants/{tenant}/usage?resource_type=executions&days=1", token=key)
    assert (status, Decimal(body["total"])) == (200, 3), body
    status, checked = stack.request(
        "POST",
        "/v1/entitlements/check",
        {"tenant_id": str(tenant), "resource_type": "tokens", "quantity": 1},
        token=key,
    )
    assert (status, checked["used"]) == (200, "1000"), checked
