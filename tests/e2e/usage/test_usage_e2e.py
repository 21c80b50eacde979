"""The usage pipeline on the local stack (`python -m local_stack` in a subprocess): records tracked with
UsageTracker against the stack's queue and records POSTed to /v1/usage with a tenant API key go through
the SQS poller, the consumer, the usage table's stream and the aggregator, and show up in the trend and
top-consumer routes."""

from __future__ import annotations

import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.config import Config

from billing_platform import resources
from billing_platform.usage.dimensions import DimensionGate
from billing_platform.usage.models import Granularity, floor_to
from billing_platform.usage.queue import SqsUsageQueue
from billing_platform.usage.repository import AggregateRepository
from billing_platform.usage.tracker import UsageTracker
from tests.factories.local_stack_process import LocalStackProcess, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local_stack_usage")]

PIPELINE_TIMEOUT = 60.0  # the pipeline is asynchronous (batching windows of 5 s)


def test_tracked_and_posted_usage_shows_up_in_trends_and_top_consumers(stack: LocalStackProcess) -> None:
    suffix = str(int(time.time() * 1000))[-8:]
    alpha, beta = f"e2e_a{suffix}", f"e2e_b{suffix}"
    status, created = stack.request("POST", f"/v1/tenants/{alpha}/api-keys", {"name": "usage e2e"})
    assert status == 201, created
    alpha_key = created["secret"]

    sqs = boto3.client(
        "sqs",
        endpoint_url=stack.banner.moto_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"mode": "standard", "max_attempts": 3}),
    )
    queue_url = sqs.get_queue_url(QueueName=resources.USAGE_QUEUE.local_name)["QueueUrl"]
    now = datetime.now(UTC)
    ddb = boto3.client(
        "dynamodb",
        endpoint_url=stack.banner.dynamodb_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    # The tracker registers each new model value (the catalog's cardinality cap) in the stack's read model.
    gate = DimensionGate(registry=AggregateRepository(client=ddb))
    sender = SqsUsageQueue(queue_url, client=sqs)
    with UsageTracker(sender, batch_size=20, flush_interval_seconds=0.5, dimension_gate=gate).sync as tracker:
        for _ in range(30):
            tracker.track_tokens(alpha, 100, "model-x")
        for _ in range(10):
            tracker.track(beta, "tokens", "12.5", timestamp=now - timedelta(hours=1))
    assert tracker.get_stats()["flushed"] == 40

    status, body = stack.request(
        "POST",
        "/v1/usage",
        {"records": [{"resource_type": "tokens", "quantity": 7}, {"resource_type": "nope"}]},
        token=alpha_key,
    )
    assert status == 202, body
    assert (body["accepted"], body["rejected"]) == (1, 1)
    status, body = stack.request(
        "POST",
        "/v1/usage",
        {"records": [{"tenant_id": beta, "resource_type": "tokens", "quantity": 1}]},
        token=alpha_key,
    )
    assert status == 403, body

    def alpha_trend() -> tuple[bool, Any]:
        status, body = stack.request("GET", f"/v1/tenants/{alpha}/usage?resource_type=tokens&days=2", token=alpha_key)
        assert status == 200, body
        return Decimal(body["total"]) == Decimal(3007), body

    trend = eventually(
        alpha_trend,
        PIPELINE_TIMEOUT,
        interval=0.5,
        context=lambda: "local stack output:\n" + "\n".join(stack.output[:80]),
    )
    assert len(trend["points"]) == 2

    status, _ = stack.request("GET", f"/v1/tenants/{beta}/usage?resource_type=tokens", token=alpha_key)
    assert status == 403

    end = floor_to(Granularity.HOUR, now) + timedelta(hours=1)
    params = urllib.parse.urlencode(
        {
            "resource_type": "tokens",
            "start": (end - timedelta(hours=3)).isoformat(),
            "end": end.isoformat(),
            "limit": 100,
        }
    )

    def top() -> tuple[bool, Any]:
        status, body = stack.request("GET", f"/v1/usage/top?{params}")
        assert status == 200, body
        found = {i["tenant_id"]: Decimal(i["quantity"]) for i in body["items"] if i["tenant_id"] in (alpha, beta)}
        return found == {alpha: Decimal(3007), beta: Decimal(125)}, body

    eventually(top, PIPELINE_TIMEOUT, interval=0.5)

    # Dimensions over HTTP: a declared one is accepted, an undeclared one refused with nothing written;
    # the series groups the tenant's tokens by model, and the records without one stay ungrouped.
    status, body = stack.request(
        "POST",
        "/v1/usage",
        {"records": [{"resource_type": "tokens", "quantity": 5, "dimensions": {"colour": "red"}}]},
        token=alpha_key,
    )
    assert status == 422, body
    day = floor_to(Granularity.DAY, now)
    series = urllib.parse.urlencode(
        {
            "resource_type": "tokens",
            "start": day.isoformat(),
            "end": (day + timedelta(days=1)).isoformat(),
            "granularity": "hour",
            "group_by": "model",
        }
    )
    status, body = stack.request("GET", f"/v1/tenants/{alpha}/usage/series?{series}", token=alpha_key)
    assert status == 200, body
    assert Decimal(body["total"]) == Decimal(3007)
    assert [(g["value"], Decimal(g["total"])) for g in body["groups"]] == [("model-x", Decimal(3000))]
    assert Decimal(body["ungrouped"]) == Decimal(7)
    assert body["complete_until"] is not None
