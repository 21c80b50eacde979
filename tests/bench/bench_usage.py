"""AWS requests, write units and cost per usage event, end to end, against two naive designs.

The real pipeline runs in-process over DynamoDB Local and moto's SQS server: UsageTracker -> SQS ->
usage_consumer (batches of resources.USAGE_CONSUMER's size) -> usage table stream -> usage_aggregator
(batches of resources.USAGE_AGGREGATOR's size), driven by tests/integration/test_usage_scale_faults.py's
`pump`. Every request is counted with botocore hooks on the real clients; DynamoDB capacity is what
DynamoDB Local reports with ReturnConsumedCapacity=INDEXES (table and index writes), except where it
under-reports: a transaction is counted as AWS bills it, 2 WRU per item (DynamoDB Local reports 2 for the
whole transaction) and 2 per index write, the index writes following from the index design (one on a
row's creation; per update none for keys-only static keys, 2 for the old index keyed on the total); a
refused conditional write (reported as nothing) 1 WRU. SQS is billed per 64 KiB chunk.
After each run every hour / day / month row is compared with sums computed from the generated records.

The naive designs are computed from their definitions: "naive" = one SendMessage, one PutItem and one
UpdateItem per event (2 WRU); "naive + read model" = the same with hour, day and month UpdateItems each
also writing a top-consumer index (1 + 3 x 2 WRU). The event source receives / deletes 10 messages per
request; one consumer invocation per 10 messages, one aggregator invocation per 100 records, ~30 ms at
512 MB each. Neither is exactly-once.

Lambda GB-seconds are the emulator's wall time (a proxy: DynamoDB Local on 2 shared cores is slower than
DynamoDB). `python -m tests.bench bench_usage` runs all workloads; BENCH_USAGE_ONLY=steady,late picks some,
BENCH_USAGE_WRITES=single one aggregate write mode.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.bench.prices import (
    DDB_RRU_PER_MILLION,
    DDB_WRU_PER_MILLION,
    LAMBDA_GB_SECOND,
    LAMBDA_PER_MILLION,
    SQS_CHUNK_BYTES,
    SQS_PER_MILLION,
    STREAMS_READS_PER_MILLION,
    price_table,
)

TARGET_REQUESTS_PER_EVENT = 0.05
DDB_WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")
DDB_READS = ("GetItem", "BatchGetItem", "Query", "Scan")


@dataclass
class Counts:
    requests: Counter[str] = field(default_factory=Counter)
    sqs_billed: int = 0
    wru_table: float = 0.0
    wru_index: float = 0.0
    rru: float = 0.0
    rows_written: int = 0
    transact_items: int = 0  # row updates committed inside transactions

    @property
    def wru(self) -> float:
        return self.wru_table + self.wru_index


def _aggregate_rows(params: dict[str, Any]) -> list[Any]:
    """The aggregate rows among a transaction's items (the old design also committed checkpoint items)."""
    items = params.get("TransactItems", [])
    return [i for i in items if i.get("Update", {}).get("Key", {}).get("pk", {}).get("S", "").startswith("AGG#")]


def _bytes(value: Any) -> int:
    return len(str(value).encode())


class RequestCounter:
    """botocore hooks on the real clients: API requests, SQS billing chunks, DynamoDB capacity units as
    DynamoDB reports them. Thread-safe: the aggregator writes from worker threads."""

    def __init__(self) -> None:
        self.counts = Counts()
        self._lock = threading.Lock()
        self._local = threading.local()

    def attach(self, client: Any, label: str) -> None:
        client.meta.events.register("provide-client-params", self._ask_capacity)
        client.meta.events.register(
            "after-call", lambda model, parsed, context, **_: self._after(label, model, parsed, context)
        )

    def _ask_capacity(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if model.service_model.service_name == "dynamodb" and model.name in DDB_WRITES + DDB_READS:
            params.setdefault("ReturnConsumedCapacity", "INDEXES")
        context["bench_params"] = params

    def _after(self, label: str, model: Any, parsed: dict[str, Any], context: dict[str, Any]) -> None:
        with self._lock:
            self._count(label, model.name, context.get("bench_params", {}), parsed)

    def _count(self, label: str, op: str, params: dict[str, Any], parsed: dict[str, Any]) -> None:
        c = self.counts
        c.requests[f"{label}:{op}"] += 1
        if op == "SendMessageBatch":
            size = sum(_bytes(e["MessageBody"]) for e in params.get("Entries", []))
            c.sqs_billed += max(1, math.ceil(size / SQS_CHUNK_BYTES))
        elif op == "ReceiveMessage":
            size = sum(_bytes(m.get("Body", "")) for m in parsed.get("Messages", []))
            c.sqs_billed += max(1, math.ceil(size / SQS_CHUNK_BYTES))
        elif op in ("DeleteMessageBatch", "SendMessage", "ChangeMessageVisibilityBatch"):
            c.sqs_billed += 1
        if op == "UpdateItem":
            c.rows_written += 1
        elif op == "TransactWriteItems":
            c.rows_written += len(_aggregate_rows(params))
        consumed = parsed.get("ConsumedCapacity")
        if op == "TransactWriteItems":
            items = len(params.get("TransactItems", []))
            c.wru_table += 2 * items  # committed or cancelled, each item is billed as a transactional write
            if "Error" not in parsed:
                c.transact_items += len(_aggregate_rows(params))
            return
        if consumed is None:
            if "Error" in parsed and op == "UpdateItem":
                c.wru_table += 1  # a refused conditional write is billed 1 WRU
            return
        for entry in consumed if isinstance(consumed, list) else [consumed]:
            table = entry.get("Table", {}).get("CapacityUnits", entry.get("CapacityUnits", 0.0))
            index = sum(i.get("CapacityUnits", 0.0) for i in entry.get("GlobalSecondaryIndexes", {}).values())
            if op in DDB_READS:
                c.rru += table + index
            else:
                c.wru_table += table
                c.wru_index += index


def quiet_environment() -> None:
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "POWERTOOLS_LOG_LEVEL": "CRITICAL",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_SERVICE_NAME": "bench",
        }
    )
    for var in [v for v in os.environ if v.startswith("AWS_ENDPOINT_URL")]:
        os.environ.pop(var)


@contextmanager
def emulated_aws() -> Iterator[tuple[dict[str, str], Any]]:
    """DynamoDB Local (tables and the usage stream) and moto's server (SQS), fresh for one run."""
    import boto3
    from moto.server import ThreadedMotoServer

    from billing_platform import clients, resources
    from billing_platform.settings import get_settings
    from local_stack.dynamodb_local import DynamoDBLocal, free_port
    from local_stack.provision import create_queue, create_tables

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        with DynamoDBLocal() as ddb:
            names = create_tables(ddb.client("dynamodb"))
            names.update(
                create_queue(boto3.client("sqs", endpoint_url=f"http://127.0.0.1:{port}"), resources.USAGE_QUEUE)
            )
            os.environ.update(names)
            os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = ddb.endpoint_url
            os.environ["AWS_ENDPOINT_URL_DYNAMODBSTREAMS"] = ddb.endpoint_url
            os.environ["AWS_ENDPOINT_URL_SQS"] = f"http://127.0.0.1:{port}"
            get_settings.cache_clear()
            clients.reset()
            yield names, ddb
            get_settings.cache_clear()
            clients.reset()
    finally:
        moto.stop()


@dataclass
class Workload:
    name: str
    events: int
    tenants: int
    hours: int  # timestamps uniform over the last `hours` hours ...
    late_share: float = 0.0  # ... except this share, uniform over the last 30 days
    writes: str = "transact"  # USAGE_AGGREGATE_WRITES
    faults: bool = False

    @property
    def label(self) -> str:
        return f"{self.name} [{self.writes}{', faults' if self.faults else ''}]"


@dataclass
class Result:
    workload: Workload
    counts: Counts
    invocations: dict[str, int]
    gb_seconds: float
    worst_aggregator_seconds: float
    exact: bool
    faults: dict[str, int]
    distinct_rows: int  # hour / day / month rows the workload's events fall in


def run(w: Workload) -> Result:
    import warnings

    warnings.filterwarnings("ignore")
    import boto3
    from botocore.config import Config

    from billing_platform import clients, resources
    from tests.integration.test_usage_fault_injection import expected_aggregates
    from tests.integration.test_usage_scale_faults import aggregate_rows, generate_workload, pump

    quiet_environment()  # again: importing the test helpers loads tests/conftest.py's environment
    os.environ["USAGE_AGGREGATE_WRITES"] = w.writes
    counter = RequestCounter()
    with emulated_aws() as (names, ddb):
        tracker_sqs = clients.sqs()
        counter.attach(tracker_sqs, "tracker")
        counter.attach(clients.dynamodb(), "functions")
        esm_sqs = boto3.client("sqs")  # Lambda's event source mapping polls with its own client
        counter.attach(esm_sqs, "event-source")
        rng = random.Random(7)
        records = generate_workload(
            rng, w.events, datetime.now(UTC), tenants=w.tenants, hours=w.hours, late_share=w.late_share
        )
        pumped = pump(
            records,
            sqs=esm_sqs,
            tracker_sqs=tracker_sqs,
            queue_url=names[resources.USAGE_QUEUE.env_var],
            raw_client=ddb.client("dynamodb"),
            streams=ddb.client("dynamodbstreams"),
            usage_table=names[resources.USAGE_TABLE.env_var],
            faults=w.faults,
            rng=rng,
        )
        # A patient client: scanning ~150,000 rows of a busy emulator outlasts DynamoDBLocal.client's 10 s.
        patient = boto3.client(
            "dynamodb",
            endpoint_url=ddb.endpoint_url,
            region_name="us-east-1",
            config=Config(read_timeout=600, retries={"mode": "standard", "max_attempts": 10}),
        )
        rows = aggregate_rows(patient, names[resources.AGGREGATES_TABLE.env_var])
        exact = rows == expected_aggregates(records)
    c = counter.counts
    if c.transact_items:
        # Each row created one index entry; each later update k more (see the module docstring).
        updates = max(0, c.transact_items - len(rows))
        c.wru_index += 2 * (len(rows) + updates * index_writes_per_update())
    gb_seconds = (
        pumped.consumer_seconds * resources.USAGE_CONSUMER.memory_mb / 1024
        + sum(pumped.aggregator_durations) * resources.USAGE_AGGREGATOR.memory_mb / 1024
    )
    return Result(
        w,
        counter.counts,
        {"consumer": pumped.consumer_invocations, "aggregator": pumped.aggregator_invocations},
        gb_seconds,
        max(pumped.aggregator_durations, default=0.0),
        exact,
        pumped.faults,
        len(rows),
    )


def index_writes_per_update() -> int:
    """Index writes caused by adding to an existing row's total: none when the index's keys never change
    and it projects keys only; 2 (delete + put) when the total is its sort key; 1 when it projects it."""
    from billing_platform import resources

    (index,) = resources.AGGREGATES_TABLE.indexes
    if index.sort_key is not None and index.sort_key.type == "N":
        return 2
    return 0 if getattr(index, "projection", "ALL") == "KEYS_ONLY" else 1


def cost_per_million(r: Result) -> dict[str, float]:
    scale = 1_000_000 / r.workload.events
    c = r.counts
    return {
        "sqs": c.sqs_billed * scale * SQS_PER_MILLION / 1e6,
        "dynamodb": (c.wru * DDB_WRU_PER_MILLION + c.rru * DDB_RRU_PER_MILLION) * scale / 1e6,
        "lambda": (sum(r.invocations.values()) * LAMBDA_PER_MILLION / 1e6 + r.gb_seconds * LAMBDA_GB_SECOND) * scale,
        "streams": STREAMS_READS_PER_MILLION,
    }


def naive_per_million() -> tuple[float, float, dict[str, float]]:
    """(requests per event, WRU per event, $ per million by service) of the one-put-one-update design."""
    sqs = (1 + 0.1 + 0.1) * SQS_PER_MILLION
    invocations = 1_000_000 / 10 + 1_000_000 / 100
    lam = invocations * LAMBDA_PER_MILLION / 1e6 + invocations * 0.03 * 0.5 * LAMBDA_GB_SECOND
    return 3.0, 2.0, {"sqs": sqs, "dynamodb": 2 * DDB_WRU_PER_MILLION, "lambda": lam, "streams": 0.0}


def naive_same_read_model_per_million() -> tuple[float, float, dict[str, float]]:
    """The naive design made to answer the same queries as ours: one SendMessage, one PutItem, and one
    UpdateItem for each of the hour, day and month rows, each also writing the top-consumer index (2 WRU).
    Still neither idempotent nor exact under redelivery: a floor for per-event writes, not an equal."""
    _, _, base = naive_per_million()
    return 5.0, 7.0, {**base, "dynamodb": 7 * DDB_WRU_PER_MILLION}


WORKLOADS = [
    Workload("steady: 20 tenants x 4 resources, last hour", 10_000, 20, 1),
    Workload("wide: 500 tenants x 4 resources, 6 hours", 10_000, 500, 6),
    Workload("late: 200 tenants x 4 resources, 25% up to 30 days old", 20_000, 200, 1, late_share=0.25),
    Workload("scale: 5,000 tenants x 4 resources, 24 hours", 100_000, 5_000, 24),
]


def workloads() -> list[Workload]:
    out: list[Workload] = []
    for w in WORKLOADS:
        out += [w, Workload(w.name, w.events, w.tenants, w.hours, w.late_share, writes="single")]
    scale = WORKLOADS[-1]
    out.append(Workload(scale.name, scale.events, scale.tenants, scale.hours, faults=True))
    only = [s.strip() for s in os.environ.get("BENCH_USAGE_ONLY", "").split(",") if s.strip()]
    writes = os.environ.get("BENCH_USAGE_WRITES")
    out = [w for w in out if not writes or w.writes == writes]
    return [w for w in out if not only or any(w.name.startswith(o) or w.label.startswith(o) for o in only)]


def report(r: Result) -> dict[str, Any]:
    from billing_platform import resources

    c, n = r.counts, r.workload.events
    ours = sum(v for k, v in c.requests.items() if not k.startswith("event-source"))
    esm = sum(v for k, v in c.requests.items() if k.startswith("event-source"))
    cost = cost_per_million(r)
    total = sum(cost.values())
    print(f"\n[{r.workload.label}] {n} events", flush=True)
    for key, value in sorted(c.requests.items()):
        print(f"  {key:<36} {value:>8}  ({value / n:.5f} per event)")
    print(
        f"  requests per event by our code: {ours / n:.4f} (target <= {TARGET_REQUESTS_PER_EVENT}: "
        f"{'met' if ours / n <= TARGET_REQUESTS_PER_EVENT else 'NOT met'}); event source SQS {esm / n:.4f}"
    )
    print(
        f"  WRU per event {c.wru / n:.3f} (table {c.wru_table / n:.3f}, index {c.wru_index / n:.3f}); "
        f"aggregate rows written per event {c.rows_written / n:.3f}; RRU {c.rru / n:.4f}; SQS billed {c.sqs_billed}"
    )
    timeout = resources.USAGE_AGGREGATOR.timeout_seconds
    print(
        f"  lambda invocations {r.invocations}; aggregator worst invocation {r.worst_aggregator_seconds:.1f} s "
        f"of {timeout} s timeout (emulator wall time); GB-s {r.gb_seconds:.1f}"
    )
    if r.workload.faults:
        print(f"  faults injected: {r.faults}")
    print(f"  every hour / day / month row equals the independent sums: {'yes' if r.exact else 'NO'}")
    print("  cost per million events: " + ", ".join(f"{k} ${v:.4f}" for k, v in cost.items()) + f" = ${total:.4f}")
    naive = sum(naive_per_million()[2].values())
    same = sum(naive_same_read_model_per_million()[2].values())
    print(
        f"  naive ${naive:.4f} ({total / naive:.2f}x of it); naive + read model ${same:.4f} ({same / total:.1f}x ours)"
    )
    # The least any design storing one item per record and one per hour / day / month row can write: each
    # item once, no index, no retry. Priced at DynamoDB alone, it shows whether 0.5x naive is reachable at all.
    floor_wru = 1 + r.distinct_rows / n
    floor_cost = floor_wru * DDB_WRU_PER_MILLION
    print(
        f"  floor of this storage layout: 1 + {r.distinct_rows / n:.3f} rows = {floor_wru:.2f} WRU per event, "
        f"${floor_cost:.4f}/M in DynamoDB writes alone ({floor_cost / naive:.2f}x naive)"
    )
    return {
        "workload": r.workload.label,
        "req": ours / n,
        "wru": c.wru / n,
        "cost": total,
        "naive": naive,
        "same": same,
        "worst": r.worst_aggregator_seconds,
        "timeout": timeout,
        "exact": r.exact,
        "floor": floor_cost,
    }


def main() -> None:
    quiet_environment()
    print(price_table())
    nreq, nwru, _ = naive_per_million()
    sreq, swru, _ = naive_same_read_model_per_million()
    rows = [report(run(w)) for w in workloads()]
    print(
        "\n| workload | requests/event | WRU/event | ours $/M | naive $/M (ours/naive) | naive+read model $/M "
        "(it/ours) | layout floor $/M (of naive) | aggregator worst s / timeout | exact |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['workload']} | {row['req']:.4f} | {row['wru']:.2f} | {row['cost']:.2f} | "
            f"{row['naive']:.2f} ({row['cost'] / row['naive']:.2f}x) | "
            f"{row['same']:.2f} ({row['same'] / row['cost']:.1f}x) | "
            f"{row['floor']:.2f} ({row['floor'] / row['naive']:.2f}x) | "
            f"{row['worst']:.1f} / {row['timeout']} | {'yes' if row['exact'] else 'NO'} |"
        )
    print(f"naive: {nreq:.0f} requests and {nwru:.0f} WRU per event; naive + read model: {sreq:.0f} and {swru:.0f}")


if __name__ == "__main__":
    main()
