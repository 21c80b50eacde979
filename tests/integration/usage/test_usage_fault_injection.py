"""The usage pipeline under faults, end to end through the real handlers: UsageTracker -> SQS (moto server)
-> usage_consumer -> usage table (DynamoDB Local) -> its stream (dynamodbstreams client) ->
usage_aggregator -> aggregates -> usage_query routes.

Faults injected: tracker sends refused (some refused entries were in fact delivered, so the queue holds
duplicates), every SQS message delivered twice, BatchWriteItem crashing mid-message after earlier chunks
were written and answering with UnprocessedItems, poison messages, aggregator batches cut at random
boundaries, retried from earlier points after a commit, failing transactions and handler crashes mid-batch,
late records (earlier hours, days and the previous month). Afterwards every answer (each tenant x resource per
hour, day and month, ungrouped and grouped by each dimension and by entity; top tenants of several ranges,
overall and per dimension value; the HTTP routes) must equal sums computed independently from the
generated records, every record must be in the usage table once, and exactly the poison messages in the DLQ.

The drivers below are reused by tests/bench/bench_usage.py.
"""

from __future__ import annotations

import json
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from billing_platform import clients, resources
from billing_platform.usage.models import Granularity, bucket_label, floor_to
from billing_platform.usage.queue import SendOutcome, SqsUsageQueue
from billing_platform.usage.tracker import UsageTracker
from local_stack.dynamodb_local import free_port
from local_stack.lambda_events import sqs_record_from_message, stream_record_from_api
from local_stack.provision import create_queue
from tests.conftest import reset_caches
from tests.factories.apigw import api_event, json_body
from tests.factories.handlers import load_handler
from tests.factories.lambda_context import LambdaContext
from tests.factories.usage import AnswerCheck, Expected, Sent, check_series, check_top

RESOURCES = ("executions", "tokens", "api_calls", "storage_mb")
CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, account_id_endpoint_mode="disabled")


# ------------------------------------------------------------------------------------------ generation


Generated = Sent
MODELS = ("gpt-4", "gpt-4o", "claude", "llama", "mistral", "gemini")
REGIONS = ("eu", "us", "ap")


def with_dimensions(rng: random.Random, tenant: str, resource: str) -> dict[str, Any]:
    """Tokens carry a model and often a region; most records of every resource name an entity."""
    dims: list[tuple[str, str]] = []
    if resource == "tokens":
        dims.append(("model", rng.choice(MODELS)))
        if rng.random() < 0.5:
            dims.append(("region", rng.choice(REGIONS)))
    entity = f"{tenant}-u{rng.randrange(6)}" if rng.random() < 0.7 else None
    return {"dimensions": tuple(sorted(dims)), "entity_id": entity}


def generate_records(rng: random.Random, n: int, now: datetime, tenants: int = 12) -> list[Generated]:
    """Mostly the last two days; one in six late, up to 33 days back (earlier hours, days, last month)."""
    out = []
    for i in range(n):
        late = rng.random() < 1 / 6
        age = timedelta(seconds=rng.randint(0, 33 * 86_400 if late else 2 * 86_400))
        quantity = Decimal(rng.randint(1, 5_000_000)).scaleb(-rng.choice((0, 0, 2, 6)))
        tenant = f"t{rng.randint(1, tenants):02d}"
        resource = rng.choice(RESOURCES)
        out.append(
            Generated(
                record_id=f"use_fi{i:06d}{rng.getrandbits(40):010x}",
                tenant_id=tenant,
                resource_type=resource,
                quantity=quantity,
                timestamp=(now - age).replace(microsecond=0),
                **with_dimensions(rng, tenant, resource),
            )
        )
    return out


def track_all(tracker: Any, records: list[Generated]) -> None:
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


def answer_ranges(now: datetime) -> list[tuple[datetime, datetime]]:
    """Top-list ranges: 40 days, this month, a few hours, and days with ragged hour edges."""
    hour = floor_to(Granularity.HOUR, now) + timedelta(hours=1)
    return [
        (hour - timedelta(days=40), hour),
        (floor_to(Granularity.MONTH, now), hour),
        (hour - timedelta(hours=7), hour - timedelta(hours=2)),
        (
            floor_to(Granularity.DAY, now) - timedelta(days=10, hours=5),
            floor_to(Granularity.DAY, now) - timedelta(hours=3),
        ),
    ]


def check_every_answer(records: list[Generated], now: datetime, days: int = 34) -> AnswerCheck:
    """Every answer of the library's aggregator against the independent sums of what was sent."""
    from billing_platform.usage.queries import UsageAggregator

    aggregator = UsageAggregator().sync
    expected = Expected(records)
    check = AnswerCheck()
    hour = floor_to(Granularity.HOUR, now) + timedelta(hours=1)
    check_series(aggregator, expected, (hour - timedelta(days=days), hour), check)
    check_top(aggregator, expected, answer_ranges(now), check)
    return check


# ------------------------------------------------------------------------------------------ fault injection


class FlakySender:
    """Wraps the real SQS sender. Every third request: half of its entries are refused; of those, every
    other one was in fact delivered (SQS answered, the answer was lost), so the tracker sends it again."""

    def __init__(self, inner: SqsUsageQueue) -> None:
        self.inner = inner
        self.calls = 0
        self.refused = 0

    def send_batch(self, bodies: Any) -> SendOutcome:
        from billing_platform.usage.queue import SendFailure

        self.calls += 1
        if self.calls % 3 or len(bodies) < 2:
            return self.inner.send_batch(bodies)
        refused = set(range(0, len(bodies), 2))
        delivered_anyway = {i for i in refused if i % 4 == 0}
        really = [b for i, b in enumerate(bodies) if i not in refused or i in delivered_anyway]
        self.inner.send_batch(really)
        self.refused += len(refused)
        return SendOutcome([SendFailure(i, "InternalError", False) for i in sorted(refused)])


class BatchWriteFaults:
    """botocore hook on the consumer's DynamoDB client: some BatchWriteItem calls crash (after earlier
    chunks of the same message were written), others write half and hand back the rest unprocessed."""

    def __init__(
        self, client: Any, raw_client: Any, rng: random.Random, *, crash_rate: float, unprocessed_every: int
    ) -> None:
        self.calls = 0
        self._rng = rng
        self.crashes = 0
        self.partials = 0
        self._raw = raw_client
        self._crash_rate = crash_rate
        self._unprocessed_every = unprocessed_every
        self._params: dict[str, Any] = {}
        client.meta.events.register("before-parameter-build.dynamodb.BatchWriteItem", self._remember)
        client.meta.events.register("before-call.dynamodb.BatchWriteItem", self)

    def _remember(self, params: dict[str, Any], **_: Any) -> None:
        self._params = params

    def __call__(self, **_: Any) -> Any:
        self.calls += 1
        # Random, not every n-th call: a fixed stride can hit the same message on every delivery and send
        # a valid message to the DLQ, which is SQS doing its job, not what this test is about.
        if self._rng.random() < self._crash_rate:
            self.crashes += 1
            raise ConnectionError("injected: consumer lost its connection mid-message")
        if self._unprocessed_every and self.calls % self._unprocessed_every == 0:
            (table, requests), *_ = self._params["RequestItems"].items()
            half = len(requests) // 2
            if half:
                self.partials += 1
                self._raw.batch_write_item(RequestItems={table: requests[:half]})
                response = {"UnprocessedItems": {table: requests[half:]}, "ResponseMetadata": {"HTTPStatusCode": 200}}
                return _FakeHttp(), response
        return None


class _FakeHttp:
    status_code = 200
    headers: dict[str, str] = {}
    content = b"{}"


class TransactFaults:
    """botocore hook on the aggregator's DynamoDB client: arm it to fail the k-th next TransactWriteItems,
    either as a DynamoDB error (the handler reports a batch item failure) or as a crash (the handler raises)."""

    def __init__(self, client: Any) -> None:
        self.countdown: int | None = None
        self.crash = False
        self.fired = 0
        # Whichever way the aggregator sends its writes (USAGE_AGGREGATE_WRITES: UpdateItem by default).
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
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "TransactWriteItems")


# ------------------------------------------------------------------------------------------ drivers


@dataclass
class ConsumerRun:
    invocations: int = 0
    deliveries: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    successes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    handler_errors: int = 0


def drive_consumer(
    sqs: Any, queue_url: str, handler: Callable[..., Any], *, deliver_twice: bool, batch_size: int, empty_polls: int = 3
) -> ConsumerRun:
    """Lambda's SQS event source, with a twist: a message that succeeds is made visible again once and
    deleted only after its second success. Failures come back at once (their visibility timeout 'expires')."""
    run = ConsumerRun()
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    idle = 0
    while idle < empty_polls:
        messages: list[dict[str, Any]] = []
        while len(messages) < batch_size:
            got = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=min(10, batch_size - len(messages)),
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                break
            messages.extend(got)
        if not messages:
            idle += 1
            continue
        idle = 0
        event = {"Records": [sqs_record_from_message(m, queue_arn=arn, region="us-east-1") for m in messages]}
        run.invocations += 1
        try:
            response = handler(event, LambdaContext())
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except Exception:
            run.handler_errors += 1
            failed = {m["MessageId"] for m in messages}
        delete, again = [], []
        for m in messages:
            mid = m["MessageId"]
            run.deliveries[mid] += 1
            if mid in failed:
                again.append(m)
                continue
            run.successes[mid] += 1
            (again if deliver_twice and run.successes[mid] == 1 else delete).append(m)
        for chunk in _chunks(delete, 10):
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        for chunk in _chunks(again, 10):
            sqs.change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                    for i, m in enumerate(chunk)
                ],
            )
    return run


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def read_stream(ddb: Any, streams: Any, table: str) -> dict[str, list[dict[str, Any]]]:
    """Every record of the table's stream, per shard, as Lambda's event carries them."""
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    out: dict[str, list[dict[str, Any]]] = {}
    for shard in shards:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records: list[dict[str, Any]] = []
        empty = 0
        while iterator and empty < 2:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            got = page.get("Records", [])
            records.extend(stream_record_from_api(r, stream_arn=arn) for r in got)
            empty = 0 if got else empty + 1
            iterator = page.get("NextShardIterator")
        out[shard["ShardId"]] = records
    return out


@dataclass
class AggregatorRun:
    invocations: int = 0
    crashes: int = 0
    reported_failures: int = 0
    rewinds: int = 0


def drive_aggregator(
    records: list[dict[str, Any]],
    handler: Callable[..., Any],
    rng: random.Random,
    *,
    max_batch: int,
    min_batch: int = 1,
    faults: TransactFaults | None = None,
    fault_rate: float = 0.0,
    rewind_rate: float = 0.0,
) -> AggregatorRun:
    """One shard's records through the handler with random batch boundaries. A crash retries from the same
    record with a new batch size (Lambda's bisect / later batches differ too); a reported failure resumes
    at the failed record; after a success the shard sometimes resumes from an earlier record anyway (the
    invocation timed out after committing)."""
    run = AggregatorRun()
    position = 0
    while position < len(records):
        batch = records[position : position + rng.randint(min_batch, max_batch)]
        if faults is not None and rng.random() < fault_rate:
            faults.arm(rng.randint(0, 2), crash=rng.random() < 0.5)
        run.invocations += 1
        try:
            response = handler({"Records": batch}, LambdaContext())
        except RuntimeError:
            run.crashes += 1
            continue
        finally:
            if faults is not None:
                faults.countdown = None
        failed = [f["itemIdentifier"] for f in response.get("batchItemFailures", [])]
        if failed:
            run.reported_failures += 1
            seqs = [r["dynamodb"]["SequenceNumber"] for r in batch]
            position += min(seqs.index(s) for s in failed)
        elif rng.random() < rewind_rate:
            run.rewinds += 1
            position += rng.randint(0, len(batch) - 1)
        else:
            position += len(batch)
    return run


def scan_all(ddb: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = ddb.scan(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@pytest.fixture
def moto_sqs(env: pytest.MonkeyPatch) -> Iterator[tuple[Any, dict[str, str]]]:
    """moto's server for SQS (real HTTP, real receive counts and DLQ redrive), exported to the layer."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    url = f"http://127.0.0.1:{port}"
    try:
        sqs = boto3.client("sqs", endpoint_url=url, region_name="us-east-1", config=CONFIG)
        names = create_queue(sqs, resources.USAGE_QUEUE)
        env.setenv("AWS_ENDPOINT_URL_SQS", url)
        for key, value in names.items():
            env.setenv(key, value)
        reset_caches()
        yield sqs, names
    finally:
        server.stop()


# ------------------------------------------------------------------------------------------ the proof

N_RECORDS = 10_000


@pytest.mark.ddblocal
def test_every_aggregate_is_exact_after_duplicates_crashes_retries_and_poison(
    ddb_local_tables: dict[str, str], moto_sqs: tuple[Any, dict[str, str]], dynamodb_local: Any
) -> None:
    sqs, queues = moto_sqs
    queue_url = queues[resources.USAGE_QUEUE.env_var]
    rng = random.Random(20261125)
    now = datetime.now(UTC).replace(microsecond=0)
    records = generate_records(rng, N_RECORDS, now)

    # 1. Track from four threads through a sender that loses answers and refuses entries.
    sender = FlakySender(SqsUsageQueue(queue_url, client=sqs))
    tracker = UsageTracker(sender, batch_size=50, flush_interval_seconds=0.2, sleep=lambda _: None).sync
    import threading

    def produce(part: list[Generated]) -> None:
        track_all(tracker, part)

    with tracker:
        threads = [threading.Thread(target=produce, args=(records[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    stats = tracker.get_stats()
    assert stats["tracked"] == N_RECORDS
    assert stats["flushed"] == N_RECORDS
    assert stats["buffered"] == 0
    assert sender.refused > 0  # the faults did fire, and were retried: nothing left unsent

    poison = [
        "not json at all",
        json.dumps({"v": 1, "records": []}),
        json.dumps(
            {
                "v": 1,
                "records": [
                    {**records[0].__dict__, "record_id": "use_poison1", "quantity": "-5", "timestamp": now.isoformat()}
                ],
            },
            default=str,
        ),
        json.dumps(
            {
                "v": 1,
                "records": [
                    {
                        "record_id": "use_poison2",
                        "tenant_id": "t01",
                        "resource_type": "gold_bars",
                        "quantity": "1",
                        "timestamp": now.isoformat(),
                    }
                ],
            }
        ),
        json.dumps(
            {
                "v": 1,
                "records": [
                    {
                        "record_id": "use_poison4",
                        "tenant_id": "t01",
                        "resource_type": "api_calls",
                        "quantity": "1",
                        "timestamp": now.isoformat(),
                        "dimensions": {"model": "gpt-4"},
                    }
                ],
            }
        ),
        json.dumps(
            {
                "v": 1,
                "records": [
                    {
                        "record_id": "use_poison3",
                        "tenant_id": "t01",
                        "resource_type": "tokens",
                        "quantity": "1",
                        "timestamp": (now - timedelta(days=90)).isoformat(),
                    }
                ],
            }
        ),
    ]
    for body in poison:
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)

    # 2. Consume: every message twice, BatchWriteItem crashing and returning unprocessed items.
    consumer = load_handler(resources.USAGE_CONSUMER.name)
    raw_client = dynamodb_local.client("dynamodb")
    write_faults = BatchWriteFaults(
        clients.dynamodb(), raw_client, random.Random(5), crash_rate=0.04, unprocessed_every=17
    )
    consumed = drive_consumer(
        sqs, queue_url, consumer.handler, deliver_twice=True, batch_size=resources.USAGE_CONSUMER.sqs_source.batch_size
    )
    assert write_faults.crashes > 0
    assert write_faults.partials > 0
    usage_table = ddb_local_tables[resources.USAGE_TABLE.env_var]
    raw = scan_all(raw_client, usage_table)
    assert sorted(i["record_id"]["S"] for i in raw) == sorted(r.record_id for r in records)
    dlq_url = queues[resources.USAGE_QUEUE.dlq_env_var]
    dlq_bodies = []
    while got := sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10).get("Messages", []):
        dlq_bodies.extend(m["Body"] for m in got)
        sqs.delete_message_batch(
            QueueUrl=dlq_url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
        )
    assert sorted(dlq_bodies) == sorted(poison)
    assert all(consumed.successes[mid] == 2 for mid in consumed.successes)

    # 3. Aggregate: random boundaries, rewinds after commits, failing transactions and crashes.
    aggregator = load_handler(resources.USAGE_AGGREGATOR.name)
    faults = TransactFaults(clients.dynamodb())
    shards = read_stream(raw_client, dynamodb_local.client("dynamodbstreams"), usage_table)
    inserts = sum(1 for recs in shards.values() for r in recs if r["eventName"] == "INSERT")
    assert inserts == N_RECORDS
    runs = [
        drive_aggregator(recs, aggregator.handler, rng, max_batch=500, faults=faults, fault_rate=0.15, rewind_rate=0.2)
        for recs in shards.values()
    ]
    assert faults.fired > 0
    assert sum(r.rewinds for r in runs) > 0
    assert sum(r.crashes for r in runs) > 0

    # 4. Every answer equals the independent sums: each tenant x resource per hour, day and month, ungrouped
    #    and grouped by model, region and entity; top tenants of several ranges, overall and per dimension value.
    check = check_every_answer(records, now)
    assert check.mismatches == []
    assert check.series >= 12 * 4 * 3 * 2
    assert check.top_lists >= 4 * (4 + len(MODELS) + len(REGIONS))

    # 5. The query routes answer the same: top tenants, a grouped series and the daily trend over HTTP.
    query = load_handler(resources.USAGE_QUERY.name)
    expected = Expected(records)
    for start, end in answer_ranges(now):
        span = {"start": start.isoformat(), "end": end.isoformat(), "limit": "100"}
        for resource in RESOURCES:
            response = query.handler(
                api_event("GET", "/v1/usage/top", operator=True, query={"resource_type": resource, **span}),
                LambdaContext(),
            )
            assert response["statusCode"] == 200, response
            got = [(i["tenant_id"], Decimal(i["quantity"])) for i in json_body(response)["items"]]
            assert got == expected.top(resource, start, end), (start, end, resource)
        by_model = {"resource_type": "tokens", "dimension": "model", "value": "claude", **span}
        response = query.handler(
            api_event("GET", "/v1/usage/top-tenants", operator=True, query=by_model), LambdaContext()
        )
        got = [(i["tenant_id"], Decimal(i["quantity"])) for i in json_body(response)["items"]]
        assert got == expected.top("tokens", start, end, ("model", "claude"))
    month = floor_to(Granularity.MONTH, now)
    tomorrow = floor_to(Granularity.DAY, now) + timedelta(days=1)
    series = {"resource_type": "tokens", "start": month.isoformat(), "end": tomorrow.isoformat(), "group_by": "model"}
    response = query.handler(
        api_event("GET", "/v1/tenants/t07/usage/series", tenant_id="t07", query=series), LambdaContext()
    )
    assert response["statusCode"] == 200, response
    body = json_body(response)
    assert body["complete_until"] is not None
    assert len(body["groups"]) == len(MODELS)
    for group in body["groups"]:
        for point in group["points"]:
            want = expected.sums.get(("t07", "tokens", "day", point["start"][:10], "model", group["value"]), 0)
            assert Decimal(point["quantity"]) == want
    for tenant in ("t01", "t07"):
        response = query.handler(
            api_event(
                "GET", f"/v1/tenants/{tenant}/usage", tenant_id=tenant, query={"resource_type": "tokens", "days": "40"}
            ),
            LambdaContext(),
        )
        points = {p["date"]: Decimal(p["quantity"]) for p in json_body(response)["points"]}
        for label, total in points.items():
            assert total == expected.sums.get((tenant, "tokens", "day", label, "", ""), 0)
        assert len(points) == 40
        assert bucket_label(Granularity.DAY, now) in points
