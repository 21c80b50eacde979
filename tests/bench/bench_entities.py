"""The take across entity levels on Amazon's DynamoDB Local: consume with 0, 1, 2 and 3 limited levels, with
a per-minute window on an entity limit and with one on the plan itself (the hot path), beside today's plain
consume and a bare write of the same items (the UpdateItem or TransactWriteItems the take has to make, built
by the same item builders and sent straight from the client), in the same run. Prints checks/s, requests and
WRU per check (ConsumedCapacity, as DynamoDB Local reports it) and each take's ratio to its bare write
(goal: >= 0.9x).

The machine is shared: every round runs every case and its bare write back to back (interleaved), and the
table gives the median over the rounds of checks/s and of the per-round ratio.

Run: `.venv/bin/python -m tests.bench bench_entities`. Numbers from DynamoDB Local on a shared 2-core machine
measure the client's work and request count, not DynamoDB's own latency. DynamoDB Local's ConsumedCapacity
does not charge a transaction's items at the 2x transactional rate; the `AWS WRU` column prices the same
writes as DynamoDB does (UpdateItem: 1 per item under 1 KB; TransactWriteItems: 2 per item).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError

from billing_platform.auth.caller import Actor
from billing_platform.catalog.models import Window
from billing_platform.conditions import failed_conditions, lost_race
from billing_platform.entities.models import LimitKind, LimitTerms
from billing_platform.entities.repository import EntityRepository, limit_key
from billing_platform.entities.service import EntityService
from billing_platform.entitlements.dal.counters import take_item
from billing_platform.entitlements.entity_take import entity_item
from billing_platform.entitlements.models import add_months
from billing_platform.entitlements.repository import counter_key
from billing_platform.levels import align_windows
from billing_platform.settings import Settings
from local_stack.dynamodb_local import DynamoDBLocal
from local_stack.provision import create_tables
from tests.factories.catalogs import catalog, plan, quota
from tests.factories.services import entitlement_service

THREADS = 16
CALLS = int(os.environ.get("BENCH_ENTITY_CALLS", "600"))
ROUNDS = int(os.environ.get("BENCH_ENTITY_ROUNDS", "5"))
BIG = Decimal("1000000000")
CATALOG = catalog(
    {
        "big": plan(quota("1000000000", resource_type="tokens"), name="Big"),
        "bigwin": plan(
            quota("1000000000", resource_type="tokens", windows={"minute": "1000000000"}), name="Big per minute"
        ),
    },
    resource_types=("tokens",),
    version="bench",
)
ACTOR = Actor("operator:bench")
PLAIN = ("plain", "planwindow")  # cases that name no entity


class Meter:
    """Requests by operation and write capacity, as DynamoDB Local answers them (retries included)."""

    def __init__(self, client: Any) -> None:
        self._lock = threading.Lock()
        self.ops: Counter[str] = Counter()
        self.wru = 0.0
        client.meta.events.register("provide-client-params.dynamodb.*", self._ask_capacity)
        client.meta.events.register("before-send.dynamodb.*", self._sent)
        client.meta.events.register("after-call.dynamodb.*", self._capacity)

    @staticmethod
    def _ask_capacity(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name in ("UpdateItem", "TransactWriteItems", "PutItem"):
            params.setdefault("ReturnConsumedCapacity", "TOTAL")

    def _sent(self, request: Any, **_: Any) -> None:
        with self._lock:
            self.ops[request.headers["X-Amz-Target"].decode().split(".")[-1]] += 1

    def _capacity(self, parsed: dict[str, Any], **_: Any) -> None:
        consumed = parsed.get("ConsumedCapacity")
        if isinstance(consumed, dict):
            consumed = [consumed]
        total = sum(float(c.get("CapacityUnits", 0)) for c in consumed or [])
        with self._lock:
            self.wru += total

    def reset(self) -> None:
        with self._lock:
            self.ops.clear()
            self.wru = 0.0


def measure(meter: Meter, call: Callable[[int], Any]) -> tuple[float, float, float, str]:
    """(checks/s, requests/check, WRU/check, operations) over CALLS calls on THREADS threads."""
    meter.reset()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        for answer in pool.map(call, range(CALLS)):
            if answer is not None and getattr(answer, "allowed", True) is False:
                raise RuntimeError(f"the bench expects every take granted: {answer}")
    elapsed = time.perf_counter() - started
    total = sum(meter.ops.values())
    ops = ", ".join(f"{n} {c}" for n, c in sorted(meter.ops.items()))
    return CALLS / elapsed, total / CALLS, meter.wru / CALLS, ops


def main() -> None:
    with DynamoDBLocal() as ddb:
        client = ddb.client(
            "dynamodb", Config(max_pool_connections=THREADS + 8, retries={"mode": "standard", "max_attempts": 5})
        )
        names = create_tables(client, prefix="bench-")
        settings = Settings(billing_table_name=names["BILLING_TABLE_NAME"])
        table = settings.billing_table_name
        svc = entitlement_service(CATALOG, client=client, settings=settings, seed=1)
        entities = EntityService(settings, repository=EntityRepository(settings, client), plans=svc)
        start = datetime.now(UTC) - timedelta(days=1)
        # One tenant per case, so no case's counters contend with another's.
        cases = {"plain": 0, "planwindow": 0, "levels0": 0, "levels1": 1, "levels2": 2, "levels3": 3, "window1": 1}
        chains: dict[str, list[str]] = {}
        for tenant, depth in cases.items():
            plan = "bigwin" if tenant == "planwindow" else "big"
            svc.apply_plan(tenant, plan, period_start=start, period_end=add_months(start, 1), source_version=1)
            chain: list[str] = []
            parent: str | None = None
            for level in ("team", "user", "key"):
                entities.create(tenant, level, actor=ACTOR, parent_id=parent)
                chain.insert(0, level)
                parent = level
            for limited in chain[len(chain) - depth :] if depth else []:
                windows = {Window.MINUTE: BIG} if tenant == "window1" else {}
                terms = LimitTerms(LimitKind.ABSOLUTE, amount=BIG, windows=windows)
                entities.set_limit(tenant, limited, "tokens", terms, actor=ACTOR)
            chains[tenant] = chain[len(chain) - depth :] if depth else []
            svc.consume(tenant, "tokens", entity_id=None if tenant in PLAIN else "key")  # warm the caches
        meter = Meter(client)
        one = Decimal(1)

        def bare(tenant: str) -> Callable[[int], None]:
            """The write the take has to make, built by the same item builders and sent straight."""

            def call(_i: int) -> None:
                now = datetime.now(UTC)
                plan_marker = "minute=1000000000" if tenant == "planwindow" else ""
                key = counter_key(tenant, "tokens")
                tenant_item = take_item(table, key, one, now, enforce=True, windows=plan_marker)
                if not chains[tenant]:
                    update = tenant_item["Update"]
                    try:
                        client.update_item(**update, ReturnValues="ALL_NEW")
                    except ClientError as err:
                        # The plan's minute window rolled over: start it (as the take does), then write again.
                        if not lost_race(err) or "Item" not in err.response:
                            raise
                        align_windows(client, table, key, err.response["Item"], {Window.MINUTE: BIG}, datetime.now(UTC))
                        client.update_item(**update, ReturnValues="ALL_NEW")
                    return
                marker = "minute=1000000000" if tenant == "window1" else ""
                items = [tenant_item] + [
                    entity_item(table, limit_key(tenant, e, "tokens"), one, now, enforce=True, marker=marker)
                    for e in chains[tenant]
                ]
                try:
                    client.transact_write_items(TransactItems=items)
                except ClientError as err:
                    # A minute window rolled over: start it (as the take does), then the same write again.
                    failed = failed_conditions(err) or {}
                    for index, old in failed.items():
                        if old is not None and index > 0:
                            key = items[index]["Update"]["Key"]
                            align_windows(client, table, key, old, {Window.MINUTE: BIG}, datetime.now(UTC))
                    if not failed:
                        raise
                    client.transact_write_items(TransactItems=items)

            return call

        print(
            f"DynamoDB Local, {os.cpu_count()} cores shared; {THREADS} threads, {CALLS} takes of 1 per row and round, "
            f"{ROUNDS} interleaved rounds, medians",
            flush=True,
        )
        labels = {
            "plain": "plain consume (today's hot path)",
            "planwindow": "plain consume, plan minute window",
            "levels0": "entity, 0 limited levels",
            "levels1": "entity, 1 limited level",
            "levels2": "entity, 2 limited levels",
            "levels3": "entity, 3 limited levels",
            "window1": "entity, 1 level + minute window",
        }
        only = set(filter(None, os.environ.get("BENCH_ENTITY_CASES", "").split(",")))  # e.g. "plain,window1"
        chosen = [t for t in labels if not only or t in only]
        runs: dict[str, list[tuple[tuple[float, float, float, str], tuple[float, float, float, str]]]] = {
            t: [] for t in chosen
        }
        for _round in range(ROUNDS):  # each round runs every case and its bare write back to back
            for tenant in chosen:
                entity = None if tenant in PLAIN else "key"
                take = lambda i, t=tenant, e=entity: svc.consume(t, "tokens", one, entity_id=e)  # noqa: E731
                runs[tenant].append((measure(meter, take), measure(meter, bare(tenant))))
        header = (
            f"{'case':<36}{'checks/s':>10}{'req/check':>11}{'WRU/check':>11}{'AWS WRU':>9}{'bare/s':>9}"
            f"{'bare WRU':>10}{'ratio':>7}{'min':>6}{'max':>6}"
        )
        print(header, flush=True)
        for tenant in chosen:
            pairs = runs[tenant]
            ratios = [got[0] / bare_got[0] for got, bare_got in pairs]
            levels = len(chains[tenant])
            aws_wru = 2 * (levels + 1) if levels else 1
            print(
                f"{labels[tenant]:<36}{statistics.median(g[0] for g, _b in pairs):>10.0f}"
                f"{statistics.median(g[1] for g, _b in pairs):>11.2f}"
                f"{statistics.median(g[2] for g, _b in pairs):>11.2f}"
                f"{aws_wru:>9}{statistics.median(b[0] for _g, b in pairs):>9.0f}"
                f"{statistics.median(b[2] for _g, b in pairs):>10.2f}"
                f"{statistics.median(ratios):>7.2f}{min(ratios):>6.2f}{max(ratios):>6.2f}   ({pairs[-1][0][3]})",
                flush=True,
            )
