"""AWS requests, write units and cost per usage event, end to end, against two naive designs.

The real pipeline runs in-process over DynamoDB Local and moto's SQS server: UsageTracker -> SQS ->
usage_consumer (batches of resources.USAGE_CONSUMER's size) -> usage table stream -> usage_aggregator
(batches of resources.USAGE_AGGREGATOR's size), driven by tests/integration/usage/test_usage_scale_faults.py's
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

import copy
import logging
import math
import os
import random
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
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
    largest_item: int = 0  # bytes, the largest day item written
    registry_writes: int = 0  # the values registry's conditional writes (a new dimension value or entity)
    wru_registry: float = 0.0

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
        self.sizes: dict[tuple[str, str], int] = {}
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
        if model.name == "UpdateItem" and params.get("Key", {}).get("sk", {}).get("S", "").startswith("D#"):
            # The item after the update: with the size known from before, the write is billed as DynamoDB
            # bills it (the larger of the two sizes, per KB).
            params["ReturnValues"] = "ALL_NEW"
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
        if op == "UpdateItem" and params.get("Key", {}).get("sk", {}).get("S", "").startswith("D#"):
            self._day_update(params, parsed)
            return
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
        if op == "UpdateItem" and params.get("Key", {}).get("sk", {}).get("S", "").startswith("V#"):
            c.registry_writes += 1
            c.wru_registry += sum(
                e.get("Table", {}).get("CapacityUnits", e.get("CapacityUnits", 0.0))
                for e in (consumed if isinstance(consumed, list) else [consumed])
            )

    def _day_update(self, params: dict[str, Any], parsed: dict[str, Any]) -> None:
        """A day item's update, billed from the sizes: max(before, after) per KB (a refused one: its size
        before); its creation also writes one entry of the keys-only `top` index."""
        c = self.counts
        key = (params["Key"]["pk"]["S"], params["Key"]["sk"]["S"])
        before = self.sizes.get(key, 0)
        if "Error" in parsed:
            c.wru_table += max(1, math.ceil(before / 1024))
            return
        after = item_size(parsed.get("Attributes", {}))
        self.sizes[key] = after
        c.wru_table += max(1, math.ceil(max(before, after) / 1024))
        if not before:
            c.wru_index += 1
        c.largest_item = max(c.largest_item, after)


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's item size: attribute names plus values (numbers ~1 byte per 2 digits + 1)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        ((kind, raw),) = value.items()
        if kind == "S":
            size += len(raw.encode())
        elif kind == "N":
            size += (len(raw.replace("-", "").replace(".", "").lstrip("0")) + 1) // 2 + 1
        elif kind == "B":
            size += len(raw)
        elif kind == "SS":
            size += sum(len(v.encode()) for v in raw)
        elif kind == "M":
            size += 3 + item_size(raw)
        else:
            size += 1
    return size


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
    writes: str = "single"  # USAGE_AGGREGATE_WRITES
    faults: bool = False
    realistic: bool = False  # Zipf tenants, tokens over 6 models, entities per tenant

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
    checked: str  # what the answer check compared
    faults: dict[str, int]
    day_items: int  # distinct tenant x resource x day items the workload's events fall in
    batch_items: int  # the same, counted per aggregator batch (the least writes of this layout per run)
    dimension_values: float  # mean dimension values + entity per event (the naive design writes a row each)
    reads: list[str] = field(default_factory=list)


MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet", "claude-haiku", "llama-70b", "mistral-large")


def generate_realistic(rng: random.Random, n: int, now: datetime, tenants: int, hours: int) -> list[Any]:
    """Tenants with Zipf-distributed volume (s = 1.1), tokens over 6 models (a tenant prefers a few), an
    entity (user / key) on every record, up to 50 entities per tenant (more for bigger tenants)."""
    from tests.factories.usage import Sent

    weights = [1 / (rank**1.1) for rank in range(1, tenants + 1)]
    picks = rng.choices(range(tenants), weights=weights, k=n)
    out = []
    for i, t in enumerate(picks):
        tenant = f"tenant{t:04d}"
        entities = max(1, min(50, int(50 * weights[t] / weights[min(tenants - 1, 20)])))
        model = MODELS[min(len(MODELS) - 1, int(rng.expovariate(0.8)))]
        out.append(
            Sent(
                record_id=f"use_rl{i:07d}{rng.getrandbits(32):08x}",
                tenant_id=tenant,
                resource_type="tokens",
                quantity=Decimal(rng.randint(50, 8000)),
                timestamp=(now - timedelta(seconds=rng.randint(0, hours * 3600 - 1))).replace(microsecond=0),
                dimensions=(("model", model),),
                entity_id=f"{tenant}-e{rng.randrange(entities)}",
            )
        )
    return out


def items_per_batch(records: list[Any], batch: int) -> tuple[int, int]:
    """(distinct day items, day items summed over aggregator batches of `batch` records in send order)."""
    keys = [(r.tenant_id, r.resource_type, r.timestamp.astimezone(UTC).strftime("%Y-%m-%d")) for r in records]
    per_batch = sum(len(set(keys[s : s + batch])) for s in range(0, len(keys), batch))
    return len(set(keys)), per_batch


def check_exact(records: list[Any], now: datetime, sample: int) -> tuple[bool, str]:
    """Every answer against the independent sums; series of all tenants, or of `sample` of them (the
    biggest and a random rest) when there are more; every top list."""
    from tests.integration.usage.test_usage_scale_faults import check_answers

    tenants = sorted({r.tenant_id for r in records})
    chosen: set[str] | None = None
    if len(tenants) > sample:
        volume: Counter[str] = Counter(r.tenant_id for r in records)
        chosen = {t for t, _ in volume.most_common(sample // 2)}
        chosen |= set(random.Random(3).sample(tenants, sample - len(chosen)))
    check = check_answers(records, now, chosen)
    what = (
        f"{check.series} series of {len(chosen or tenants)} of {len(tenants)} tenants ({check.points} points), "
        f"{check.top_lists} top lists; mismatches {len(check.mismatches)}"
    )
    for line in check.mismatches[:5]:
        print(f"  MISMATCH {line}")
    return not check.mismatches, what


def read_costs(counter: RequestCounter, records: list[Any], now: datetime) -> list[str]:
    """RRU and wall time of the issue's two reads on DynamoDB Local: a tenant's month by day grouped by
    model (the biggest tenant and a median one), and the month's top 10 of all tenants (and by one model)."""
    import time

    from billing_platform.usage.models import Granularity, floor_to, next_bucket
    from billing_platform.usage.queries import UsageAggregator

    aggregator = UsageAggregator().sync
    month = floor_to(Granularity.MONTH, now)
    end = next_bucket(Granularity.MONTH, month)
    volume = Counter(r.tenant_id for r in records if r.timestamp >= month)
    ranked = [t for t, _ in volume.most_common()]
    out = []
    cases: list[tuple[str, Any]] = [
        (
            f"tenant month by day grouped by model ({name} tenant, {volume[t]} events)",
            lambda t=t: aggregator.get_usage(t, "tokens", month, end, granularity="day", group_by="model"),
        )
        for name, t in (("biggest", ranked[0]), ("median", ranked[len(ranked) // 2]))
    ]
    cases.append(
        (f"month's top 10 of {len(volume)} tenants", lambda: aggregator.get_top_tenants("tokens", month, end, 10))
    )
    cases.append(
        (
            "month's top 10 by one model",
            lambda: aggregator.get_top_tenants("tokens", month, end, 10, dimension="model", value=MODELS[0]),
        )
    )
    days = (min(now, end) - month).days + 1
    for label, read in cases:
        before_rru, before_req = counter.counts.rru, sum(counter.counts.requests.values())
        started = time.perf_counter()
        read()
        seconds = time.perf_counter() - started
        rru = counter.counts.rru - before_rru
        requests = sum(counter.counts.requests.values()) - before_req
        out.append(f"{label}: {rru:.1f} RRU, {requests} requests, {seconds * 1000:.0f} ms (month so far: {days} days)")
    return out


def run(w: Workload) -> Result:
    import warnings

    warnings.filterwarnings("ignore")
    import boto3

    from billing_platform import clients, resources
    from tests.integration.usage.test_usage_scale_faults import generate_workload, pump

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
        now = datetime.now(UTC)
        if w.realistic:
            records = generate_realistic(rng, w.events, now, w.tenants, w.hours)
        else:
            records = generate_workload(rng, w.events, now, tenants=w.tenants, hours=w.hours, late_share=w.late_share)
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
        # What the pipeline cost, before the checks and the read measurements add their reads.
        written = copy.deepcopy(counter.counts)
        exact, checked = check_exact(records, now, sample=200)
        reads = read_costs(counter, records, now) if w.realistic or w.name.startswith("scale") else []
    c = written
    if c.transact_items:
        c.wru_index += 2 * c.transact_items  # old transact accounting: index writes are not modelled per size
    gb_seconds = (
        pumped.consumer_seconds * resources.USAGE_CONSUMER.memory_mb / 1024
        + sum(pumped.aggregator_durations) * resources.USAGE_AGGREGATOR.memory_mb / 1024
    )
    batch = resources.USAGE_AGGREGATOR.stream_source.batch_size  # type: ignore[union-attr]
    day_items, batch_items = items_per_batch(records, batch)
    labels = sum(len(r.dimensions) + (r.entity_id is not None) for r in records) / len(records)
    return Result(
        w,
        c,
        {"consumer": pumped.consumer_invocations, "aggregator": pumped.aggregator_invocations},
        gb_seconds,
        max(pumped.aggregator_durations, default=0.0),
        exact,
        checked,
        pumped.faults,
        day_items,
        batch_items,
        labels,
        reads,
    )


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


def naive_same_read_model_per_million(labels: float) -> tuple[float, float, dict[str, float]]:
    """The naive design made to answer the same queries as ours: one SendMessage, one PutItem, and for the
    total and for each dimension value and entity the record carries (`labels` on average), one UpdateItem
    of each of its hour, day and month rows, each also writing the top-consumer index (2 WRU).
    Still neither idempotent nor exact under redelivery: a floor for per-event writes, not an equal."""
    _, _, base = naive_per_million()
    wru = 1 + 3 * 2 * (1 + labels)
    return 2 + 3 * (1 + labels), wru, {**base, "dynamodb": wru * DDB_WRU_PER_MILLION}


WORKLOADS = [
    Workload("steady: 20 tenants x 4 resources, last hour", 10_000, 20, 1),
    Workload("wide: 500 tenants x 4 resources, 6 hours", 10_000, 500, 6),
    Workload("late: 200 tenants x 4 resources, 25% up to 30 days old", 20_000, 200, 1, late_share=0.25),
    Workload("scale: 5,000 tenants x 4 resources, 24 hours", 100_000, 5_000, 24),
    Workload(
        "realistic: 5,000 Zipf tenants, tokens x 6 models, entities, 24 hours", 200_000, 5_000, 24, realistic=True
    ),
]


def workloads() -> list[Workload]:
    writes = os.environ.get("BENCH_USAGE_WRITES", "single")
    out = [
        Workload(w.name, w.events, w.tenants, w.hours, w.late_share, writes, realistic=w.realistic) for w in WORKLOADS
    ]
    scale = WORKLOADS[3]
    out.append(Workload(scale.name, scale.events, scale.tenants, scale.hours, writes=writes, faults=True))
    only = [s.strip() for s in os.environ.get("BENCH_USAGE_ONLY", "").split(";") if s.strip()]
    return [w for w in out if not only or any(w.label.startswith(o) for o in only)]


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
    print(f"  requests per event by our code: {ours / n:.4f}; event source SQS {esm / n:.4f}")
    print(
        f"  WRU per event {c.wru / n:.3f} (table {c.wru_table / n:.3f}, index {c.wru_index / n:.3f}); "
        f"day-item writes per event {c.rows_written / n:.3f}; RRU {c.rru / n:.4f}; SQS billed {c.sqs_billed}; "
        f"largest day item {c.largest_item} bytes"
    )
    timeout = resources.USAGE_AGGREGATOR.timeout_seconds
    print(
        f"  lambda invocations {r.invocations}; aggregator worst invocation {r.worst_aggregator_seconds:.1f} s "
        f"of {timeout} s timeout (emulator wall time); GB-s {r.gb_seconds:.1f}"
    )
    if r.workload.faults:
        print(f"  faults injected: {r.faults}")
    print(f"  every answer equals the independent sums: {'yes' if r.exact else 'NO'} ({r.checked})")
    print("  cost per million events: " + ", ".join(f"{k} ${v:.4f}" for k, v in cost.items()) + f" = ${total:.4f}")
    naive = sum(naive_per_million()[2].values())
    _, swru, same_parts = naive_same_read_model_per_million(r.dimension_values)
    same = sum(same_parts.values())
    print(
        f"  naive ${naive:.4f} ({total / naive:.2f}x of it); naive + same answers ({swru:.0f} WRU, "
        f"{r.dimension_values:.2f} dimension values + entity per event) ${same:.4f} ({same / total:.1f}x ours)"
    )
    # Floors: any exact design stores each record once to deduplicate it (1 WRU); this layout also writes
    # each day item at least once per aggregator batch that touches it.
    raw_floor = DDB_WRU_PER_MILLION
    batch_floor = (1 + r.batch_items / n) * DDB_WRU_PER_MILLION
    ideal_floor = (1 + r.day_items / n) * DDB_WRU_PER_MILLION
    print(
        f"  floors in DynamoDB writes alone: the raw record ${raw_floor:.4f}/M ({raw_floor / naive:.2f}x naive); "
        f"+ each day item once per batch ({r.batch_items / n:.3f}/event) ${batch_floor:.4f} "
        f"({batch_floor / naive:.2f}x); + each day item once ({r.day_items / n:.3f}/event) ${ideal_floor:.4f} "
        f"({ideal_floor / naive:.2f}x)"
    )
    # This design's floor in the whole bill: the per-batch floor above, plus what it cannot write less of
    # (the values registry's writes as measured, one `top` index entry per day item) and the run's SQS and
    # Lambda costs as measured.
    design_floor = batch_floor + (c.wru_registry + r.day_items) * DDB_WRU_PER_MILLION / n + cost["sqs"] + cost["lambda"]
    print(
        f"  values registry: {c.registry_writes / n:.3f} writes/event, {c.wru_registry / n:.3f} WRU/event; "
        f"this design's floor, whole bill (per-batch floor + registry + index + SQS + Lambda as measured): "
        f"${design_floor:.4f}/M ({design_floor / naive:.2f}x naive)"
    )
    for line in r.reads:
        print(f"  read: {line}")
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
        "floor": batch_floor,
        "design_floor": design_floor,
    }


def main() -> None:
    quiet_environment()
    print(price_table())
    rows = [report(run(w)) for w in workloads()]
    print(
        "\n| workload | requests/event | WRU/event | ours $/M | naive $/M (ours/naive) | naive+same answers $/M "
        "(it/ours) | per-batch layout floor $/M (of naive) | design floor, whole bill $/M (of naive) | "
        "aggregator worst s / timeout | exact |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['workload']} | {row['req']:.4f} | {row['wru']:.2f} | {row['cost']:.2f} | "
            f"{row['naive']:.2f} ({row['cost'] / row['naive']:.2f}x) | "
            f"{row['same']:.2f} ({row['same'] / row['cost']:.1f}x) | "
            f"{row['floor']:.2f} ({row['floor'] / row['naive']:.2f}x) | "
            f"{row['design_floor']:.2f} ({row['design_floor'] / row['naive']:.2f}x) | "
            f"{row['worst']:.1f} / {row['timeout']} | {'yes' if row['exact'] else 'NO'} |"
        )


if __name__ == "__main__":
    main()
