"""The usage pipeline on the local stack (`python -m local_stack` in a subprocess): records tracked with
UsageTracker against the stack's queue and records POSTed to /v1/usage with a tenant API key go through
the SQS poller, the consumer, the usage table's stream and the aggregator, and show up in the trend and
top-consumer routes."""

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
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from billing_platform import resources
from billing_platform.usage.models import Granularity, floor_to
from billing_platform.usage.queue import SqsUsageQueue
from billing_platform.usage.tracker import UsageTracker

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local_stack_usage")]

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 90.0


@dataclass
class Stack:
    base_url: str
    operator_token: str
    moto_url: str
    output: list[str]

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


def _read_until_ready(proc: subprocess.Popen[str]) -> Stack:
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout
    threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    token = moto = None
    seen: list[str] = []

    def keep_reading() -> None:
        while True:
            seen.append(lines.get())

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
        if match := re.search(r"moto[^:]*: (http\S+)", line):
            moto = match.group(1)
        if match := re.match(r"READY (\S+)", line):
            assert token is not None, "".join(seen)
            assert moto is not None, "".join(seen)
            threading.Thread(target=keep_reading, daemon=True).start()
            return Stack(match.group(1), token, moto, seen)
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
        yield _read_until_ready(proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def eventually(check: Callable[[], tuple[bool, Any]], timeout: float = 60.0) -> Any:
    """Poll until `check` says done: the pipeline is asynchronous (batching windows of 5 s)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        done, last = check()
        if done:
            return last
        time.sleep(0.5)
    raise AssertionError(f"condition not reached; last value: {last!r}")


def test_tracked_and_posted_usage_shows_up_in_trends_and_top_consumers(stack: Stack) -> None:
    suffix = str(int(time.time() * 1000))[-8:]
    alpha, beta = f"e2e_a{suffix}", f"e2e_b{suffix}"
    status, created = stack.request("POST", f"/v1/tenants/{alpha}/api-keys", {"name": "usage e2e"})
    assert status == 201, created
    alpha_key = created["secret"]

    sqs = boto3.client(
        "sqs",
        endpoint_url=stack.moto_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"mode": "standard", "max_attempts": 3}),
    )
    queue_url = sqs.get_queue_url(QueueName=resources.USAGE_QUEUE.local_name)["QueueUrl"]
    now = datetime.now(UTC)
    with UsageTracker(SqsUsageQueue(queue_url, client=sqs), batch_size=20, flush_interval_seconds=0.5) as tracker:
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

    try:
        trend = eventually(alpha_trend)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nlocal stack output:\n{''.join(stack.output[:80])}") from None
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

    eventually(top)
