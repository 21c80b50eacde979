"""Entitlement benchmark on Amazon's DynamoDB Local: checks/s, AWS requests per check (counted with
botocore event hooks, so every retry and every slow-path read is included), and the cold import time
of the entitlement function.

Run: `.venv/bin/python -m tests.bench bench_entitlements`. Numbers from DynamoDB Local on a shared
2-core machine measure the client's work and request count, not DynamoDB's own latency.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from botocore.config import Config

from billing_platform.audit.log import AuditEntry
from billing_platform.entitlements.models import EntitlementCheck, add_months
from billing_platform.entitlements.service import EntitlementService
from billing_platform.grants.models import Grant, GrantSource, GrantState
from billing_platform.grants.repository import GrantRepository
from billing_platform.settings import Settings
from local_stack.dynamodb_local import DynamoDBLocal
from local_stack.provision import create_tables
from tests.factories.catalogs import catalog, plan, quota
from tests.factories.services import entitlement_service

ROOT = Path(__file__).resolve().parents[2]
THREADS = 16
CATALOG = catalog(
    {
        "single": plan(quota("1000000"), name="One counter"),
        "small": plan(quota("100"), name="Small"),
        "sharded": plan(quota("1000000"), name="Eight shards", shards=8),
        "sharded_small": plan(quota("800"), name="Eight small shards", shards=8),
    },
    version="bench",
)


class RequestCounter:
    """Counts DynamoDB requests by operation, as sent on the wire (retries included)."""

    def __init__(self, client: Any) -> None:
        self._lock = threading.Lock()
        self.ops: Counter[str] = Counter()
        client.meta.events.register("before-send.dynamodb.*", self._sent)

    def _sent(self, request: Any, **_: Any) -> None:
        operation = request.headers["X-Amz-Target"].decode().split(".")[-1]
        with self._lock:
            self.ops[operation] += 1

    def reset(self) -> None:
        with self._lock:
            self.ops.clear()

    @property
    def total(self) -> int:
        return sum(self.ops.values())


def run(
    label: str,
    counter: RequestCounter,
    calls: int,
    threads: int,
    call: Callable[[int], EntitlementCheck],
) -> list[EntitlementCheck]:
    counter.reset()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        answers = list(pool.map(call, range(calls)))
    elapsed = time.perf_counter() - started
    granted = sum(1 for a in answers if a.allowed)
    ops = ", ".join(f"{name} {count}" for name, count in sorted(counter.ops.items()))
    print(
        f"{label:<58} {calls / elapsed:8.0f} checks/s  {counter.total / calls:5.2f} requests/check"
        f"  ({granted}/{calls} granted; {ops})",
        flush=True,
    )
    return answers


def cold_import_seconds(repeats: int = 5) -> tuple[float, list[tuple[int, str]]]:
    """Median wall time to import functions/entitlements/handler.py in a fresh interpreter, and the
    largest cumulative imports from `-X importtime`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BILLING_TABLE_NAME": "billing", "AWS_DEFAULT_REGION": "us-east-1"}
    code = "import time; t = time.perf_counter(); import functions.entitlements.handler; print(time.perf_counter() - t)"
    times = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=ROOT
        )
        times.append(float(out.stdout.strip().splitlines()[-1]))
    trace = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import functions.entitlements.handler"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    rows = []
    for line in trace.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].rstrip()
            depth = len(name) - len(name.lstrip())
            if 2 < depth <= 5:  # what the handler imports directly (and their own first level)
                rows.append((int(parts[1]), name.strip()))
    return statistics.median(times), sorted(rows, reverse=True)[:6]


def main() -> None:
    with DynamoDBLocal() as ddb:
        client = ddb.client(
            "dynamodb",
            Config(max_pool_connections=THREADS + 8, retries={"mode": "standard", "max_attempts": 5}),
        )
        names = create_tables(client, prefix="bench-")
        settings = Settings(billing_table_name=names["BILLING_TABLE_NAME"])
        counter = RequestCounter(client)

        def service(seed: int = 1) -> EntitlementService:
            return entitlement_service(CATALOG, client=client, settings=settings, seed=seed)

        svc = service()
        start = datetime.now(UTC) - timedelta(days=1)
        for tenant, plan_id in (
            ("single", "single"),
            ("small", "small"),
            ("sharded", "sharded"),
            ("hot", "sharded_small"),
        ):
            svc.apply_plan(tenant, plan_id, period_start=start, period_end=add_months(start, 1), source_version=1)
            svc.consume(tenant, "executions")  # warm: the layout is cached, as in a warm Lambda container
        one = Decimal(1)
        print(f"DynamoDB Local, {os.cpu_count()} cores shared; quantity 1 unless noted", flush=True)

        run("hot path, one counter, 1 thread", counter, 400, 1, lambda i: svc.consume("single", "executions", one))
        run(
            f"hot path, one counter, {THREADS} threads",
            counter,
            1500,
            THREADS,
            lambda i: svc.consume("single", "executions", one),
        )
        run(
            f"hot path, 8 shards, {THREADS} threads",
            counter,
            1500,
            THREADS,
            lambda i: svc.consume("sharded", "executions", one),
        )
        answers = run(
            f"8 shards of 800 drained to zero, {THREADS} threads",
            counter,
            900,
            THREADS,
            lambda i: svc.consume("hot", "executions", one),
        )
        final = svc.check("hot", "executions")
        granted_here = sum(1 for a in answers if a.allowed)
        exact = all(a.remaining is not None and a.remaining < a.quantity for a in answers if not a.allowed)
        print(
            f"    used {final.used} of a limit of {final.limit} (1 at warm-up + {granted_here} here),"
            f" remaining {final.remaining}; every denial exact: {exact}",
            flush=True,
        )
        svc.consume("small", "executions", Decimal(99))  # 1 taken at warm-up
        run(
            "denied (one counter exhausted, no grants: + the grants query)",
            counter,
            200,
            4,
            lambda i: svc.consume("small", "executions", one),
        )
        grants = GrantRepository(settings, client)
        svc.apply_plan("granted", "small", period_start=start, period_end=add_months(start, 1), source_version=1)
        svc.consume("granted", "executions", Decimal(100))
        for priority in (10, 20):
            grant_id = f"grt_bench{priority:011d}"
            grants.create(
                [
                    Grant(
                        tenant_id="granted",
                        resource_type="executions",
                        grant_id=grant_id,
                        amount=Decimal(450),
                        remaining=Decimal(450),
                        used=Decimal(0),
                        priority=priority,
                        valid_until=None,
                        state=GrantState.ACTIVE,
                        source=GrantSource.OPERATOR,
                        source_id=grant_id,
                        created_at=start,
                        created_by="operator:bench",
                    )
                ],
                AuditEntry(tenant_id="granted", actor="operator:bench", action="grant.create", target=grant_id),
            )
        answers = run(
            f"past the quota: 2 grants of 450 drained, {THREADS} threads",
            counter,
            1000,
            THREADS,
            lambda i: svc.consume("granted", "executions", one),
        )
        left = [g.remaining for g in grants.list("granted")]
        print(
            f"    granted {sum(1 for a in answers if a.allowed)} of 1000 (quota 100 used before + grants 900);"
            f" grants left {left}",
            flush=True,
        )
        run(
            "idempotent consume (new key each, 4 threads on one counter)",
            counter,
            200,
            4,
            lambda i: svc.consume("single", "executions", one, idempotency_key=f"bench-{i}"),
        )
        run(
            "idempotent retry (key already used: replay)",
            counter,
            200,
            4,
            lambda i: svc.consume("single", "executions", one, idempotency_key=f"bench-{i}"),
        )
        run(
            "check without consuming (consistent read)",
            counter,
            200,
            4,
            lambda i: svc.check("single", "executions", one),
        )

    median, top = cold_import_seconds()
    print(
        f"\ncold import of functions/entitlements/handler.py: {median * 1000:.0f} ms (median of 5 fresh interpreters)"
    )
    for micros, name in top:
        print(f"    {micros / 1000:7.1f} ms  {name}")


if __name__ == "__main__":
    main()
