"""`billing-admin usage rebuild` on the local stack, beside live traffic: the read model of a range is
re-derived from the raw records after it drifted (a day item lost, counters inflated) and after a
correction (raw records deleted), interrupted and resumed from its state file, then run again
(idempotent); while it runs, a tracker keeps sending usage into the same tenants and days. Afterwards
every answer (hour, day, month; by model and by entity) equals the sums of what was sent and kept."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from billing_platform import resources
from billing_platform.usage.dimensions import DimensionGate
from billing_platform.usage.queries import SyncUsageAggregator
from billing_platform.usage.queue import SqsUsageQueue
from billing_platform.usage.repository import AggregateRepository, raw_key
from billing_platform.usage.tracker import UsageTracker
from tests.factories.local_stack_process import LocalStackProcess, eventually
from tests.factories.usage import AnswerCheck, Expected, Sent, check_series

BILLING_ADMIN = Path(sys.executable).with_name("billing-admin")
MODELS = ("gpt-4o", "claude", "llama")


def billing_admin(stack: LocalStackProcess, *args: str) -> tuple[int, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BILLING_", "USAGE_"))}
    endpoints = ["--dynamodb-endpoint", stack.banner.dynamodb_url, "--sqs-endpoint", stack.banner.moto_url]
    done = subprocess.run(
        [str(BILLING_ADMIN), "--json", *endpoints, *args], env=env, capture_output=True, text=True, timeout=600
    )
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else done.stderr


def make(rng: random.Random, tenant: str, at: datetime, n: int) -> Sent:
    return Sent(
        record_id=f"use_rb{tenant}{n:06d}{rng.getrandbits(24):06x}",
        tenant_id=tenant,
        resource_type="tokens",
        quantity=Decimal(rng.randint(1, 500)),
        timestamp=at.replace(microsecond=0),
        dimensions=(("model", rng.choice(MODELS)),),
        entity_id=f"{tenant}-u{rng.randrange(4)}",
    )


@pytest.mark.skipif(shutil.which(str(BILLING_ADMIN)) is None, reason="billing-admin is not installed in this venv")
def test_rebuild_beside_live_traffic_is_exact_resumable_and_idempotent(
    stack: LocalStackProcess, tmp_path: Path
) -> None:
    ddb = boto3.client(
        "dynamodb",
        endpoint_url=stack.banner.dynamodb_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"mode": "standard", "max_attempts": 5}),
    )
    sqs = boto3.client(
        "sqs",
        endpoint_url=stack.banner.moto_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    queue_url = sqs.get_queue_url(QueueName=resources.USAGE_QUEUE.local_name)["QueueUrl"]
    days = AggregateRepository(client=ddb)
    gate = DimensionGate(registry=days)
    tracker = UsageTracker(SqsUsageQueue(queue_url, client=sqs), dimension_gate=gate).sync
    rng = random.Random(11)
    suffix = str(int(time.time() * 1000))[-6:]
    tenants = [f"rb{suffix}x{i}" for i in range(3)]
    now = datetime.now(UTC)
    sent: list[Sent] = []

    def send(records: list[Sent]) -> None:
        for r in records:
            tracker.track(
                r.tenant_id,
                r.resource_type,
                r.quantity,
                timestamp=r.timestamp,
                record_id=r.record_id,
                dimensions=dict(r.dimensions),
                entity_id=r.entity_id,
            )
        tracker.flush()
        sent.extend(records)

    send([make(rng, t, now - timedelta(seconds=rng.randint(0, 4 * 86_400)), n) for n in range(150) for t in tenants])
    aggregator = SyncUsageAggregator(days)
    day0 = (now - timedelta(days=4)).replace(hour=0, minute=0, second=0, microsecond=0)
    span = (day0, now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1))

    def exact(records: list[Sent]) -> tuple[bool, AnswerCheck]:
        check = AnswerCheck()
        check_series(aggregator, Expected(records), span, check, set(tenants))
        return not check.mismatches, check

    eventually(lambda: exact(sent), 120, interval=1.0)

    # Drift and a correction: one day item lost, another inflated, and five raw records deleted by hand.
    first_day, last_day = day0.strftime("%Y-%m-%d"), (now - timedelta(days=1)).strftime("%Y-%m-%d")
    in_range = [r for r in sent if f"{r.timestamp:%Y-%m-%d}" <= last_day]
    lost = {"pk": {"S": f"U#{in_range[0].tenant_id}#tokens"}, "sk": {"S": f"D#{in_range[0].timestamp:%Y-%m-%d}"}}
    ddb.delete_item(TableName=days.table, Key=lost)
    other = next(r for r in in_range if r.tenant_id != in_range[0].tenant_id)
    inflated = {"pk": {"S": f"U#{other.tenant_id}#tokens"}, "sk": {"S": f"D#{other.timestamp:%Y-%m-%d}"}}
    ddb.update_item(
        TableName=days.table,
        Key=inflated,
        UpdateExpression="ADD t :x, h00 :x",
        ExpressionAttributeValues={":x": {"N": "999"}},
    )
    corrected = [r for r in in_range if r.tenant_id == tenants[2]][:5]
    for r in corrected:
        key = raw_key(r.tenant_id, r.resource_type, r.record_id)
        ddb.delete_item(
            TableName=resources.USAGE_TABLE.local_name, Key={"pk": {"S": key["pk"]}, "sk": {"S": key["sk"]}}
        )
    kept = [r for r in sent if r not in corrected]
    assert not exact(kept)[0]

    # Live traffic into the same tenants and days for as long as the rebuild runs.
    stop = threading.Event()
    live: list[Sent] = []

    def traffic() -> None:
        # Mostly today's usage (after the rebuilt range), now and then a late record inside the range.
        n = 10_000
        while not stop.is_set():
            batch = [make(rng, rng.choice(tenants), datetime.now(UTC), n + i) for i in range(5)]
            if n % 300 == 0:  # a late record every ~8 s
                batch.append(make(rng, rng.choice(tenants), day0 + timedelta(seconds=rng.randint(0, 86_399)), n + 5))
            n += 10
            send(batch)
            live.extend(batch)
            time.sleep(0.2)

    thread = threading.Thread(target=traffic)
    thread.start()
    state = tmp_path / "rebuild.json"
    try:
        code, first = billing_admin(
            stack, "usage", "rebuild", first_day, last_day, "--state", str(state), "--max-pairs", "1"
        )
        assert code == 0, first
        code, rest = billing_admin(stack, "usage", "rebuild", first_day, last_day, "--state", str(state))
        assert code == 0, rest
    finally:
        stop.set()
        thread.join()
    assert live, "no live traffic ran beside the rebuild"
    assert json.loads(state.read_text())["done"]
    assert first["items_written"] + rest["items_written"] >= 3 * 3  # 3 tenants x 4 days, nearly all with usage
    check = eventually(lambda: exact([r for r in sent if r not in corrected]), 120, interval=1.0)
    assert check.points > 0

    # Idempotent: a fresh run over the same range re-derives the same counters.
    code, again = billing_admin(stack, "usage", "rebuild", first_day, last_day)
    assert code == 0, again
    ok, _ = exact([r for r in sent if r not in corrected])
    assert ok
