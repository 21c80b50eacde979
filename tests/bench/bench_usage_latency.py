"""How long usage takes to reach the aggregates on the local stack (`make dev`), and what the idle pollers
cost: one record POSTed to /v1/usage at a time, then the tenant's trend polled every 0.1 s until it
counts it (the README quotes this number), with the CPU each record's trip cost; before that, the
stack's CPU while nothing happens.

The path is API -> SQS -> usage_consumer (SQS batching window) -> usage table -> stream -> usage_aggregator
(stream batching window) -> aggregates. Run: `.venv/bin/python -m tests.bench bench_usage_latency` (~1 min).
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime
from decimal import Decimal

from tests.bench.bench_local_stack import cpu_by_part
from tests.factories.local_stack_process import LocalStackProcess

SAMPLES = 6
IDLE_SECONDS = 10.0


def _idle_cpu(stack: LocalStackProcess) -> dict[str, float]:
    before = cpu_by_part(stack.process.pid)
    time.sleep(IDLE_SECONDS)
    after = cpu_by_part(stack.process.pid)
    return {part: (after[part] - before[part]) / IDLE_SECONDS for part in ("stack", "containers", "dynamodb_local")}


def _one(stack: LocalStackProcess, tenant: str, key: str, expected: Decimal) -> float:
    record = {"resource_type": "tokens", "quantity": 1, "timestamp": datetime.now(UTC).isoformat()}
    started = time.perf_counter()
    status, body = stack.request("POST", "/v1/usage", {"records": [record]}, token=key)
    assert status == 202, body
    while time.perf_counter() - started < 60:
        status, body = stack.request("GET", f"/v1/tenants/{tenant}/usage?resource_type=tokens&days=1", token=key)
        if status == 200 and Decimal(body["total"]) >= expected:
            return time.perf_counter() - started
        time.sleep(0.1)
    raise AssertionError(f"record not aggregated after 60 s: {body}")


def main() -> None:
    with LocalStackProcess.start("--log-level", "WARNING") as stack:
        stack.wait_ready()
        tenant = f"lat_{int(time.time())}"
        status, created = stack.request("POST", f"/v1/tenants/{tenant}/api-keys", {"name": "latency"})
        assert status == 201, created
        key = created["secret"]
        _one(stack, tenant, key, Decimal(1))  # warm: every container cold-starts once
        idle = _idle_cpu(stack)
        print("idle CPU s/s: " + ", ".join(f"{part} {value:.3f}" for part, value in idle.items()))
        latencies = []
        before = cpu_by_part(stack.process.pid)
        for n in range(SAMPLES):
            latencies.append(_one(stack, tenant, key, Decimal(n + 2)))
            time.sleep(0.5)
        after = cpu_by_part(stack.process.pid)
        busy = {part: (after[part] - before[part]) / SAMPLES for part in ("stack", "containers", "dynamodb_local")}
        print("CPU s per record delivered: " + ", ".join(f"{part} {value:.2f}" for part, value in busy.items()))
        print(
            f"usage -> aggregates over {SAMPLES} records: median {statistics.median(latencies):.1f} s, "
            f"min {min(latencies):.1f} s, max {max(latencies):.1f} s "
            f"({', '.join(f'{x:.1f}' for x in latencies)})"
        )


if __name__ == "__main__":
    main()
