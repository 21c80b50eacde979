"""AWS requests and cost per usage event, end to end, against the naive design.

The real pipeline runs in-process over DynamoDB Local and moto's SQS server (request counts do not depend
on the emulator): UsageTracker
-> SQS -> usage_consumer (batches of resources.USAGE_CONSUMER's size) -> usage table stream ->
usage_aggregator (batches of resources.USAGE_AGGREGATOR's size). Every request is counted with botocore
`before-call` hooks on the real clients, with payload sizes for SQS's 64 KiB billing chunks and item
counts for DynamoDB's write units. The naive design (one SendMessage, one PutItem and one UpdateItem per
event, the event source receiving/deleting 10 messages at a time) is computed from its definition.

Prices: AWS public price pages, us-east-1, as of 2024-11-01 (DynamoDB on-demand after the Nov 2024 cut),
recalled offline (no internet here): re-check before quoting.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

PRICES_AS_OF = "2024-11-01 (us-east-1, public price pages; recalled offline, re-check before quoting)"
SQS_PER_MILLION = 0.40  # standard queue, per million requests, each 64 KiB chunk of payload one request
DDB_WRU_PER_MILLION = 0.625  # on-demand write request units
DDB_RRU_PER_MILLION = 0.125  # on-demand read request units
LAMBDA_PER_MILLION = 0.20  # invocations
LAMBDA_GB_SECOND = 0.0000166667  # x86
STREAMS_READS = 0.0  # GetRecords by a Lambda event source mapping are free
CHUNK = 64 * 1024
TARGET_REQUESTS_PER_EVENT = 0.05


@dataclass
class Counts:
    requests: Counter[str]
    sqs_billed: int = 0
    wru: float = 0.0
    rru: float = 0.0


def _kib(value: Any) -> int:
    return len(str(value).encode())


class RequestCounter:
    """botocore hooks on the real clients: API requests, SQS billing chunks, DynamoDB capacity units."""

    def __init__(self) -> None:
        self.counts = Counts(Counter())

    def attach(self, client: Any, label: str) -> None:
        client.meta.events.register("provide-client-params", self._remember)
        client.meta.events.register(
            "after-call", lambda model, parsed, context, **_: self._after(label, model, parsed, context)
        )

    @staticmethod
    def _remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["bench_params"] = params

    def _after(self, label: str, model: Any, parsed: dict[str, Any], context: dict[str, Any]) -> None:
        op = model.name
        params = context.get("bench_params", {})
        self.counts.requests[f"{label}:{op}"] += 1
        c = self.counts
        if op == "SendMessageBatch":
            size = sum(_kib(e["MessageBody"]) for e in params.get("Entries", []))
            c.sqs_billed += max(1, math.ceil(size / CHUNK))
        elif op == "ReceiveMessage":
            size = sum(_kib(m.get("Body", "")) for m in parsed.get("Messages", []))
            c.sqs_billed += max(1, math.ceil(size / CHUNK))
        elif op in ("DeleteMessageBatch", "SendMessage", "ChangeMessageVisibilityBatch"):
            c.sqs_billed += 1
        elif op == "BatchWriteItem":
            for requests in params.get("RequestItems", {}).values():
                c.wru += sum(max(1, math.ceil(_kib(r["PutRequest"]["Item"]) / 1024)) for r in requests)
        elif op == "TransactWriteItems":
            c.wru += 2 * len(params.get("TransactItems", []))  # items here are < 1 KB
        elif op == "BatchGetItem":
            c.rru += sum(len(v["Keys"]) for v in params.get("RequestItems", {}).values())


def quiet_environment() -> None:
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "POWERTOOLS_LOG_LEVEL": "ERROR",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_SERVICE_NAME": "bench",
        }
    )
    for var in [v for v in os.environ if v.startswith("AWS_ENDPOINT_URL")]:
        os.environ.pop(var)


@contextmanager
def emulated_aws() -> Iterator[tuple[dict[str, str], Any]]:
    """DynamoDB Local (tables and the usage stream) and moto's server (SQS), as the fault-injection suite."""
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
class Scenario:
    name: str
    events: int
    tenants: int
    resources: int
    hours: int  # event timestamps spread over the last `hours` hours
    stream_batch: int | None = None  # what-if: another aggregator batch size than resources'


def run(s: Scenario) -> dict[str, Any]:
    import warnings

    warnings.filterwarnings("ignore")
    from billing_platform import clients, resources
    from billing_platform.usage.queue import SqsUsageQueue
    from billing_platform.usage.tracker import UsageTracker
    from tests.factories.handlers import load_handler
    from tests.integration.test_usage_fault_injection import (
        RESOURCES,
        drive_aggregator,
        drive_consumer,
        read_stream,
    )

    counter = RequestCounter()
    with emulated_aws() as (names, ddb):
        sqs_tracker = clients.sqs()
        counter.attach(sqs_tracker, "tracker")
        counter.attach(clients.dynamodb(), "functions")
        import boto3

        esm_sqs = boto3.client("sqs")  # Lambda's event source mapping polls with its own client
        counter.attach(esm_sqs, "event-source")
        streams = ddb.client("dynamodbstreams")
        rng = random.Random(7)
        now = datetime.now(UTC)
        queue_url = names[resources.USAGE_QUEUE.env_var]
        tracker = UsageTracker(SqsUsageQueue(queue_url, client=sqs_tracker)).sync
        tenants = [f"tenant{i:04d}" for i in range(s.tenants)]
        kinds = RESOURCES[: s.resources]
        for _ in range(s.events):
            tracker.track(
                rng.choice(tenants),
                rng.choice(kinds),
                rng.randint(1, 1000),
                timestamp=now - timedelta(seconds=rng.randint(0, s.hours * 3600 - 1)),
            )
        tracker.flush()
        consumer = load_handler(resources.USAGE_CONSUMER.name)
        aggregator = load_handler(resources.USAGE_AGGREGATOR.name)
        t0 = time.perf_counter()
        consumed = drive_consumer(
            esm_sqs,
            queue_url,
            consumer.handler,
            deliver_twice=False,
            batch_size=resources.USAGE_CONSUMER.sqs_source.batch_size,  # type: ignore[union-attr]
            empty_polls=1,
        )
        consumer_seconds = time.perf_counter() - t0
        shards = read_stream(ddb.client("dynamodb"), streams, names[resources.USAGE_TABLE.env_var])
        batch = s.stream_batch or resources.USAGE_AGGREGATOR.stream_source.batch_size  # type: ignore[union-attr]
        t0 = time.perf_counter()
        aggregated = [
            drive_aggregator(records, aggregator.handler, random.Random(1), max_batch=batch, min_batch=batch)
            for records in shards.values()
        ]
        aggregator_seconds = time.perf_counter() - t0
    invocations = {
        "consumer": consumed.invocations,
        "aggregator": sum(r.invocations for r in aggregated),
    }
    return {
        "scenario": s,
        "counts": counter.counts,
        "invocations": invocations,
        "seconds": {"consumer": consumer_seconds, "aggregator": aggregator_seconds},
    }


def cost_per_million(n: int, c: Counts, invocations: dict[str, int], gb_seconds: float) -> dict[str, float]:
    scale = 1_000_000 / n
    return {
        "sqs": c.sqs_billed * scale * SQS_PER_MILLION / 1e6,
        "dynamodb": (c.wru * DDB_WRU_PER_MILLION + c.rru * DDB_RRU_PER_MILLION) * scale / 1e6,
        "lambda": (sum(invocations.values()) * LAMBDA_PER_MILLION / 1e6 + gb_seconds * LAMBDA_GB_SECOND) * scale,
        "streams": STREAMS_READS,
    }


def naive_per_million() -> tuple[float, dict[str, float]]:
    """One SendMessage (1 chunk), one PutItem (1 WRU), one UpdateItem (1 WRU) per event; the event source
    receives and deletes 10 messages per request; one consumer invocation per 10 messages and one
    aggregator invocation per 100 stream records, ~30 ms at 512 MB each (an optimistic guess)."""
    per_event_ours = 3.0  # SendMessage + PutItem + UpdateItem
    sqs = (1 + 0.1 + 0.1) * SQS_PER_MILLION
    ddb = 2 * DDB_WRU_PER_MILLION
    invocations = 1_000_000 / 10 + 1_000_000 / 100
    lam = invocations * LAMBDA_PER_MILLION / 1e6 + invocations * 0.03 * 0.5 * LAMBDA_GB_SECOND
    return per_event_ours, {"sqs": sqs, "dynamodb": ddb, "lambda": lam, "streams": 0.0}


def naive_same_read_model_per_million() -> tuple[float, dict[str, float]]:
    """The naive design made to answer the same queries as ours: one SendMessage, one PutItem, and one
    UpdateItem for each of the hour, day and month rows, each also writing the top-consumer GSI (2 WRU).
    Still neither idempotent nor exact under redelivery: a floor for per-event writes, not an equal."""
    per_event = 5.0  # SendMessage + PutItem + 3 UpdateItem
    _, base = naive_per_million()
    ddb = (1 + 3 * 2) * DDB_WRU_PER_MILLION
    return per_event, {**base, "dynamodb": ddb}


def main() -> None:
    quiet_environment()
    scenarios = [
        Scenario("steady: 20 tenants x 4 resources, last hour", 10_000, 20, 4, 1),
        Scenario("wide: 500 tenants x 4 resources, last 6 hours", 10_000, 500, 4, 6),
        Scenario("what-if: steady with aggregator batches of 500 (resources say 2,000)", 10_000, 20, 4, 1, 500),
    ]
    print(f"prices: {PRICES_AS_OF}")
    print(
        f"  SQS ${SQS_PER_MILLION}/M requests (64 KiB chunks); DynamoDB on-demand ${DDB_WRU_PER_MILLION}/M WRU, "
        f"${DDB_RRU_PER_MILLION}/M RRU; streams reads by Lambda free; Lambda ${LAMBDA_PER_MILLION}/M invocations, "
        f"${LAMBDA_GB_SECOND}/GB-s"
    )
    naive_requests, naive_cost = naive_per_million()
    same_requests, same_cost = naive_same_read_model_per_million()
    for s in scenarios:
        result = run(s)
        c: Counts = result["counts"]
        n = s.events
        ours = {k: v for k, v in c.requests.items() if not k.startswith("event-source")}
        esm = {k: v for k, v in c.requests.items() if k.startswith("event-source")}
        per_event = sum(ours.values()) / n
        from billing_platform import resources

        gb_seconds = (
            result["seconds"]["consumer"] * resources.USAGE_CONSUMER.memory_mb / 1024
            + result["seconds"]["aggregator"] * resources.USAGE_AGGREGATOR.memory_mb / 1024
        )
        cost = cost_per_million(n, c, result["invocations"], gb_seconds)
        print(f"\n[{s.name}] {n} events")
        for key, value in sorted(c.requests.items()):
            print(f"  {key:<36} {value:>7}  ({value / n:.5f} per event)")
        print(
            f"  requests per event by our code (tracker + consumer + aggregator): {per_event:.4f} "
            f"(target <= {TARGET_REQUESTS_PER_EVENT}: {'met' if per_event <= TARGET_REQUESTS_PER_EVENT else 'NOT met'})"
        )
        print(f"  + event source SQS receive/delete: {sum(esm.values()) / n:.4f} per event")
        print(f"  lambda invocations: {result['invocations']}  local wall time {result['seconds']} (emulator, a proxy)")
        print(f"  billed: SQS requests {c.sqs_billed}, WRU {c.wru:.0f}, RRU {c.rru:.0f}")
        total = sum(cost.values())
        print("  cost per million events: " + ", ".join(f"{k} ${v:.4f}" for k, v in cost.items()) + f"  = ${total:.4f}")
        naive_total = sum(naive_cost.values())
        print(
            f"  naive design: {naive_requests:.1f} requests per event; cost per million events "
            + ", ".join(f"{k} ${v:.4f}" for k, v in naive_cost.items())
            + f"  = ${naive_total:.4f}  ({naive_total / total:.1f}x ours)"
        )
        same_total = sum(same_cost.values())
        print(
            f"  naive design with our read model (hour/day/month rows + top-consumer index): {same_requests:.1f} "
            f"requests per event, ${same_total:.4f} per million ({same_total / total:.1f}x ours)"
        )


if __name__ == "__main__":
    main()
