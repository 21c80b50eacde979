"""The scale workload's shape under faults, end to end through the real handlers, with both ways of
sending the aggregate rows (`USAGE_AGGREGATE_WRITES`: transactions of 100 row updates, or one UpdateItem
per row).

The shape is bench_usage's "scale" workload: many tenants x 4 resources over 24 hours at ~0.2 events per
tenant x resource x hour, so nearly every record opens its own hour row and a batch touches thousands of
rows, plus a share of late records (up to 30 days old). Faults: the tracker's sends refused with some
in fact delivered, every SQS message delivered twice, BatchWriteItem crashing and answering with
unprocessed items, aggregator batches cut at random, rewinds after commits, and the aggregator's own
write call (TransactWriteItems or UpdateItem) failing or crashing mid-batch. Every answer (each tenant x
resource per hour, day and month; top tenants of several ranges) must equal sums computed independently
from the generated records.

Here N = 6,000 (250 tenants: the scale workload's density, small enough for CI); `make bench` runs the
full 100,000 events over 5,000 tenants through `pump` below with the same faults (`scale+faults`).
The helpers are reused by tests/bench/bench_usage.py.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from billing_platform import clients, resources
from billing_platform.usage.queue import SqsUsageQueue
from billing_platform.usage.tracker import UsageTracker
from tests.conftest import reset_caches
from tests.factories.apigw import api_event, json_body
from tests.factories.handlers import load_handler
from tests.factories.lambda_context import LambdaContext
from tests.factories.usage import AnswerCheck, Expected, check_series, check_top
from tests.integration.usage.test_usage_fault_injection import (
    RESOURCES,
    BatchWriteFaults,
    FlakySender,
    Generated,
    answer_ranges,
    drive_aggregator,
    drive_consumer,
    moto_sqs,
    read_stream,
    track_all,
)

__all__ = ["moto_sqs"]  # the fixture, imported for this module's test


def generate_workload(
    rng: random.Random,
    n: int,
    now: datetime,
    *,
    tenants: int,
    kinds: int = 4,
    hours: int = 24,
    late_share: float = 0.0,
    late_days: int = 30,
) -> list[Generated]:
    """n records over `tenants` x `kinds` resources, timestamps uniform over the last `hours` hours; a
    `late_share` of them uniform over the last `late_days` days instead (late deliveries, backfills)."""
    out = []
    for i in range(n):
        span = late_days * 86_400 - 3_600 if rng.random() < late_share else hours * 3_600
        out.append(
            Generated(
                record_id=f"use_sc{i:07d}{rng.getrandbits(32):08x}",
                tenant_id=f"tenant{rng.randrange(tenants):04d}",
                resource_type=RESOURCES[rng.randrange(kinds)],
                quantity=Decimal(rng.randint(1, 1000)),
                timestamp=(now - timedelta(seconds=rng.randint(0, span - 1))).replace(microsecond=0),
            )
        )
    return out


class WriteFaults:
    """botocore hook on the aggregator's DynamoDB client: arm it to fail the k-th next aggregate write
    (TransactWriteItems or UpdateItem, whichever the aggregator sends), either as a DynamoDB error (the
    handler reports a batch item failure) or as a crash (the handler raises)."""

    def __init__(self, client: Any) -> None:
        self.countdown: int | None = None
        self.crash = False
        self.fired = 0
        for operation in ("TransactWriteItems", "UpdateItem"):
            client.meta.events.register(f"before-call.dynamodb.{operation}", self)

    def arm(self, after: int, *, crash: bool) -> None:
        self.countdown, self.crash = after, crash

    def __call__(self, **_: Any) -> None:
        if self.countdown is None:
            return
        if self.countdown > 0:
            self.countdown -= 1
            return
        self.countdown = None
        self.fired += 1
        if self.crash:
            raise RuntimeError("injected: aggregator crashed mid-batch")
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "UpdateItem")


class TimedHandler:
    """The handler, with the wall time of each invocation kept (the bench's worst invocation time)."""

    def __init__(self, handler: Callable[..., Any]) -> None:
        self._handler = handler
        self.durations: list[float] = []

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        started = time.perf_counter()
        try:
            return self._handler(event, context)
        except ClientError as error:
            # Raised out of the handler, Lambda fails and retries the whole batch: a crash to the driver.
            raise RuntimeError(f"unhandled: {error}") from error
        finally:
            self.durations.append(time.perf_counter() - started)


@dataclass
class PumpRun:
    consumer_invocations: int = 0
    consumer_seconds: float = 0.0
    aggregator_invocations: int = 0
    aggregator_durations: list[float] = field(default_factory=list)
    inserts: int = 0
    faults: dict[str, int] = field(default_factory=dict)


def pump(
    records: list[Generated],
    *,
    sqs: Any,
    queue_url: str,
    raw_client: Any,
    streams: Any,
    usage_table: str,
    faults: bool,
    rng: random.Random,
    tracker_sqs: Any = None,
    aggregator_batch: int | None = None,
    fault_rate: float = 0.15,
) -> PumpRun:
    """Tracker -> SQS -> usage_consumer -> usage table -> stream -> usage_aggregator, through the real
    handlers; with `faults`, every fault of the module docstring (and random aggregator batch sizes)."""
    run = PumpRun()
    queue = SqsUsageQueue(queue_url, client=tracker_sqs or sqs)
    sender: Any = FlakySender(queue) if faults else queue
    tracker = UsageTracker(sender, sleep=lambda _: None).sync
    track_all(tracker, records)
    tracker.flush()
    assert tracker.get_stats()["buffered"] == 0
    consumer = load_handler(resources.USAGE_CONSUMER.name)
    write_faults = (
        BatchWriteFaults(clients.dynamodb(), raw_client, random.Random(5), crash_rate=0.04, unprocessed_every=17)
        if faults
        else None
    )
    started = time.perf_counter()
    consumed = drive_consumer(
        sqs,
        queue_url,
        consumer.handler,
        deliver_twice=faults,
        batch_size=resources.USAGE_CONSUMER.sqs_source.batch_size,  # type: ignore[union-attr]
        empty_polls=3 if faults else 1,
    )
    run.consumer_seconds = time.perf_counter() - started
    run.consumer_invocations = consumed.invocations
    aggregator = TimedHandler(load_handler(resources.USAGE_AGGREGATOR.name).handler)
    aggregate_faults = WriteFaults(clients.dynamodb()) if faults else None
    shards = read_stream(raw_client, streams, usage_table)
    run.inserts = sum(1 for recs in shards.values() for r in recs if r["eventName"] == "INSERT")
    batch = aggregator_batch or resources.USAGE_AGGREGATOR.stream_source.batch_size  # type: ignore[union-attr]
    for recs in shards.values():
        if faults:
            result = drive_aggregator(
                recs,
                aggregator,
                rng,
                max_batch=batch,
                faults=aggregate_faults,
                fault_rate=fault_rate,
                rewind_rate=0.2,  # type: ignore[arg-type]
            )
        else:
            result = drive_aggregator(recs, aggregator, rng, max_batch=batch, min_batch=batch)
        run.aggregator_invocations += result.invocations
        run.faults["aggregator crashes"] = run.faults.get("aggregator crashes", 0) + result.crashes
        run.faults["aggregator rewinds"] = run.faults.get("aggregator rewinds", 0) + result.rewinds
    run.aggregator_durations = aggregator.durations
    if faults:
        assert isinstance(sender, FlakySender)
        assert write_faults is not None
        assert aggregate_faults is not None
        run.faults.update(
            {
                "tracker sends refused": sender.refused,
                "consumer crashes": write_faults.crashes,
                "consumer partial writes": write_faults.partials,
                "aggregate write faults": aggregate_faults.fired,
                "messages delivered twice": sum(1 for n in consumed.successes.values() if n == 2),
            }
        )
    return run


def check_answers(records: list[Generated], now: datetime, tenants: set[str] | None = None) -> AnswerCheck:
    """The answers against the independent sums: every tenant x resource (or the `tenants` named) per hour,
    day and month, grouped by each dimension and entity the records carry; every top list of
    `answer_ranges`, overall and per dimension value."""
    from billing_platform.usage.queries import UsageAggregator

    aggregator = UsageAggregator().sync
    expected = Expected(records)
    check = AnswerCheck()
    hour = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    check_series(aggregator, expected, (hour - timedelta(days=31), hour), check, tenants)
    check_top(aggregator, expected, answer_ranges(now), check)
    return check


N_RECORDS = 6_000
TENANTS = 250  # 250 x 4 x 24 cells for 6,000 records: ~0.25 per cell, like 100,000 over 5,000 tenants


@pytest.mark.ddblocal
@pytest.mark.parametrize("writes", ["transact", "single"])
def test_scale_shaped_aggregates_are_exact_under_duplicates_crashes_and_resplit_batches(
    writes: str,
    ddb_local_tables: dict[str, str],
    moto_sqs: tuple[Any, dict[str, str]],
    dynamodb_local: Any,
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("USAGE_AGGREGATE_WRITES", writes)
    reset_caches()
    sqs, queues = moto_sqs
    rng = random.Random(20261127)
    now = datetime.now(UTC).replace(microsecond=0)
    records = generate_workload(rng, N_RECORDS, now, tenants=TENANTS, late_share=0.1)
    raw_client = dynamodb_local.client("dynamodb")
    run = pump(
        records,
        sqs=sqs,
        queue_url=queues[resources.USAGE_QUEUE.env_var],
        raw_client=raw_client,
        streams=dynamodb_local.client("dynamodbstreams"),
        usage_table=ddb_local_tables[resources.USAGE_TABLE.env_var],
        faults=True,
        rng=rng,
        aggregator_batch=500,  # random sizes up to 500: enough invocations for the faults to land
        fault_rate=0.3,
    )
    assert run.inserts == N_RECORDS
    # The faults did fire on every hop (a silent injector would prove nothing).
    for name in ("tracker sends refused", "consumer crashes", "aggregate write faults", "aggregator crashes"):
        assert run.faults[name] > 0, name
    assert run.faults["messages delivered twice"] > 0

    check = check_answers(records, now)
    assert check.mismatches == []
    assert check.series >= TENANTS * 3  # every tenant with usage, each resource and granularity
    assert check.top_lists >= 4 * len(RESOURCES)

    query = load_handler(resources.USAGE_QUERY.name)
    hour = now.replace(minute=0, second=0) + timedelta(hours=1)
    for start, end in ((hour - timedelta(days=31), hour), (hour - timedelta(hours=5), hour - timedelta(hours=1))):
        response = query.handler(
            api_event(
                "GET",
                "/v1/usage/top",
                operator=True,
                query={"resource_type": "tokens", "start": start.isoformat(), "end": end.isoformat(), "limit": "100"},
            ),
            LambdaContext(),
        )
        assert response["statusCode"] == 200, response
        got = [(i["tenant_id"], Decimal(i["quantity"])) for i in json_body(response)["items"]]
        assert got == Expected(records).top("tokens", start, end)[:100]
