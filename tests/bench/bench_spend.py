"""Spend-cap benchmark on Amazon's DynamoDB Local, three workloads interleaved in one run:

- plain: `consume` of a priced resource by a tenant without a cap (the hot path);
- capped: the same `consume` by a tenant with a hard cap it never reaches (the quota take and the spend
  item in one transaction, then one read of the counter for the answer);
- bare: boto3 alone sending the same transaction (counter update + spend update), no library code.

Per workload: takes/s (8 threads), requests per take (counted on the wire, retries included) and write /
read units per take (DynamoDB's pricing: a transactional write is 2 WRU per item, a consistent read 1 RRU;
items under 1 KB). DynamoDB Local on a shared 2-core machine measures the client's work and the request
count, not DynamoDB's latency; compare numbers only within one run.

Run: `.venv/bin/python -m tests.bench bench_spend`.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from billing_platform.entitlements.repository import counter_key
from billing_platform.spend.models import SpendCapRequest, spend_step
from billing_platform.spend.repository import spend_key, spend_update
from local_stack.dynamodb_local import DynamoDBLocal
from local_stack.provision import create_tables
from tests.factories.spend import SpendHarness

THREADS = 8
TAKES = 150  # per thread and round
ROUNDS = 3
RESOURCE = "calls"  # unlimited quota, volume tiers: every take is priced


class Units:
    """Requests and capacity units by operation, as sent on the wire."""

    def __init__(self, client: Any) -> None:
        self._lock = threading.Lock()
        self.ops: Counter[str] = Counter()
        self.wru = 0
        self.rru = 0
        client.meta.events.register("provide-client-params.dynamodb.*", self._params)

    def _params(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        name = model.name
        with self._lock:
            self.ops[name] += 1
            if name == "TransactWriteItems":
                self.wru += 2 * len(params["TransactItems"])
            elif name in ("UpdateItem", "PutItem", "DeleteItem"):
                self.wru += 1
            elif name == "GetItem":
                self.rru += 1
            elif name == "BatchGetItem":
                self.rru += sum(len(t["Keys"]) for t in params["RequestItems"].values())

    def reset(self) -> None:
        with self._lock:
            self.ops.clear()
            self.wru = self.rru = 0


def _timed(work: Any, units: Units) -> tuple[float, float, float, float]:
    units.reset()
    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        for future in [pool.submit(work, i) for i in range(THREADS)]:
            future.result()
    elapsed = time.perf_counter() - started
    n = THREADS * TAKES
    return n / elapsed, sum(units.ops.values()) / n, units.wru / n, units.rru / n


def main() -> None:
    with DynamoDBLocal() as ddb:
        names = create_tables(ddb.client("dynamodb"), prefix="bench-spend-")
        harness = SpendHarness(names, ddb.endpoint_url, threads=THREADS)
        units = Units(harness.client)
        harness.start("plain", None)
        harness.start("capped", SpendCapRequest(currency="usd", amount=10**11))
        harness.start("bare", None)
        services = [harness.service(seed=i) for i in range(THREADS)]
        one = Decimal(1)
        for service in services:  # warm: each container has looked the caps and layouts up once
            service.consume("plain", RESOURCE, one)
            service.consume("capped", RESOURCE, one)
        cap = harness.service().spend_caps.cap_for("capped")
        assert cap is not None
        price = harness.catalog.plan("metered").pricing.resources[RESOURCE].price  # type: ignore[union-attr]
        period_end = harness.service().spend_caps.state("capped")[0]
        table = harness.settings.billing_table_name
        client: Any = harness.client
        # The bare writer's spend item starts inside the last tier (its takes never cross a boundary).
        seed = {"u_calls": {"N": "1000"}, "s_calls": {"N": "2000"}, "spend": {"N": "2000"}}
        harness.client.put_item(TableName=table, Item={**spend_key("bare", period_end), **seed})

        def plain(i: int) -> None:
            for _ in range(TAKES):
                assert services[i].consume("plain", RESOURCE, one).allowed

        def capped(i: int) -> None:
            for _ in range(TAKES):
                assert services[i].consume("capped", RESOURCE, one).allowed

        def bare(i: int) -> None:
            # The same two items, built once per take, with no reads and no retries of the library's own.
            repo = services[i].context.repo
            for _ in range(TAKES):
                now = services[i].context.clock()
                step = spend_step(price, Decimal(1000), one)  # the last volume tier: one piece
                items = [
                    repo.take_request(counter_key("bare", RESOURCE), one, now, enforce=True),
                    spend_update(table, spend_key("bare", period_end), RESOURCE, step, cap, period_end),
                ]
                client.transact_write_items(TransactItems=items)

        results: dict[str, list[tuple[float, float, float, float]]] = {"plain": [], "capped": [], "bare": []}
        for _round in range(ROUNDS):
            for name, work in (("plain", plain), ("capped", capped), ("bare", bare)):
                results[name].append(_timed(work, units))
        print(f"{THREADS} threads x {TAKES} takes, {ROUNDS} interleaved rounds (median; DynamoDB Local)")
        print(f"{'workload':<8} {'takes/s':>9} {'req/take':>9} {'WRU/take':>9} {'RRU/take':>9} {'vs plain':>9}")
        base = statistics.median(r[0] for r in results["plain"])
        for name, rows in results.items():
            rate = statistics.median(r[0] for r in rows)
            req, wru, rru = (statistics.median(r[k] for r in rows) for k in (1, 2, 3))
            print(f"{name:<8} {rate:>9.0f} {req:>9.2f} {wru:>9.2f} {rru:>9.2f} {rate / base:>8.2f}x")
