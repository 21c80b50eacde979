"""Proof on DynamoDB Local: 40 threads consume two quotas (one counter, four shards) to exhaustion while a
stream consumer reads the billing table's real stream in batches of 7, with injected function errors
(Lambda bisects and retries) and refused PutEvents (records retried from the failure); then the whole
stream is replayed from the trim horizon in batches of 23 by a fresh container: every threshold event of
each quota reaches the bus exactly once, and the ledger holds each published. And 32 containers handling
32 shards' records of one quota at the same moment publish each threshold once.

Not covered, by design: the same record handled by two invocations at once (Lambda runs one batch per
stream shard at a time), and a crash between PutEvents and the ledger's `published` mark. Both re-publish
the same event id (tests/integration/events/test_quota_events.py shows the second); consumers dedupe on it."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from billing_platform import resources
from billing_platform.catalog.models import parse_catalog
from billing_platform.entitlements.models import add_months
from billing_platform.events.publisher import EventPublisher
from billing_platform.events.repository import EventLedger
from billing_platform.events.stream import QuotaEventProcessor
from billing_platform.settings import get_settings
from local_stack.dynamodb_local import free_port
from local_stack.pollers import StreamPoller
from local_stack.provision import EVENTS_TAP_ENV, create_event_bus, create_queue
from tests.conftest import reset_caches
from tests.factories.billing_events import counter_image, counter_write, drain_bus
from tests.factories.catalogs import catalog_json, plan, quota
from tests.factories.handlers import load_handler
from tests.factories.lambda_context import LambdaContext
from tests.factories.services import entitlement_service
from tests.factories.streams import serialize

pytestmark = [pytest.mark.ddblocal, pytest.mark.xdist_group("ddblocal")]

THREADS = 40
CATALOG = catalog_json(
    {
        "small": plan(quota("300"), name="Small", thresholds=["10", "25", "50", "80", "100"]),
        "small_hot": plan(quota("300"), name="Small, sharded", shards=4),
    },
    version="events-test",
)
CONFIG = Config(max_pool_connections=THREADS + 8, retries={"mode": "standard", "max_attempts": 5})


@pytest.fixture
def bus_server(env: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """moto's server for EventBridge + SQS (real HTTP: thread-safe), the catalog file, both exported."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    url = f"http://127.0.0.1:{port}"
    try:
        sqs = boto3.client("sqs", endpoint_url=url, region_name="us-east-1")
        names: dict[str, str] = {}
        for queue in resources.QUEUES:
            names.update(create_queue(sqs, queue))
        events = boto3.client("events", endpoint_url=url, region_name="us-east-1")
        names.update(create_event_bus(events, sqs, resources.EVENT_BUS, names))
        catalog_path = tmp_path / "plans.json"
        catalog_path.write_text(CATALOG)
        env.setenv("PLAN_CATALOG_PATH", str(catalog_path))
        env.setenv("AWS_ENDPOINT_URL_SQS", url)
        env.setenv("AWS_ENDPOINT_URL_EVENTBRIDGE", url)
        for key, value in names.items():
            env.setenv(key, value)
        reset_caches()
        yield {"sqs": sqs, "names": names}
    finally:
        server.stop()


class FlakyEvents:
    """EventBridge refusing the first PutEvents of every event (a failed entry, as when throttled)."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self.refused = 0

    def put_events(self, **kwargs: Any) -> dict[str, Any]:
        event_ids = {json.loads(e["Detail"])["event_id"] for e in kwargs["Entries"]}
        with self._lock:
            refuse = not event_ids <= self._seen
            self._seen |= event_ids
            self.refused += refuse
        if refuse:
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "ThrottlingException"}]}
        return dict(self._real.put_events(**kwargs))


def test_each_threshold_event_is_published_exactly_once_under_contention_and_stream_faults(
    ddb_local_tables: dict[str, str], dynamodb_local: Any, bus_server: dict[str, Any]
) -> None:
    rng = random.Random(20261127)
    settings = get_settings()
    catalog = parse_catalog(CATALOG)
    client = boto3.client("dynamodb", endpoint_url=dynamodb_local.endpoint_url, region_name="us-east-1", config=CONFIG)
    service = entitlement_service(catalog, client=client, settings=settings)
    start = datetime.now(UTC) - timedelta(days=2)
    for tenant, plan_id in (("t-one", "small"), ("t-hot", "small_hot")):
        service.apply_plan(tenant, plan_id, period_start=start, period_end=add_months(start, 1), source_version=1)

    handler = load_handler("quota_events")
    flaky = FlakyEvents(EventPublisher(settings).client)
    handler.processor.use(QuotaEventProcessor(settings, publisher=EventPublisher(settings, flaky)))
    lock = threading.Lock()
    injected = Counter[str]()

    def invoke(_function: str, event: dict[str, Any]) -> Any:
        with lock:
            crash = rng.random() < 0.15
            injected["function_error"] += crash
            injected["batches"] += 1
        if crash:
            raise RuntimeError("injected: container crashed before processing the batch")
        return handler.handler(event, LambdaContext())

    table = ddb_local_tables[resources.BILLING_TABLE.env_var]

    def poller(batch_size: int) -> StreamPoller:
        return StreamPoller(
            dynamodb_local.client("dynamodb"),
            dynamodb_local.client("dynamodbstreams"),
            table_name=table,
            function=resources.QUOTA_EVENTS.name,
            invoke=invoke,
            batch_size=batch_size,
            batching_window_seconds=0,
            retry_attempts=1_000,  # nothing discarded: every record must end up processed
            retry_backoff=0.001,
            poll_interval=0.02,
            key_prefixes=resources.QUOTA_EVENTS.stream_source.key_prefixes,  # type: ignore[union-attr]
        )

    consumers_done = threading.Event()

    def pump(stream_poller: StreamPoller) -> None:
        idle, deadline = 0, time.monotonic() + 90
        while idle < 3 and time.monotonic() < deadline:
            delivered = stream_poller.poll_once()
            idle = idle + 1 if consumers_done.is_set() and delivered == 0 else 0
            if delivered == 0:
                time.sleep(0.05)

    pumps = [threading.Thread(target=pump, args=(poller(7),), daemon=True)]
    for thread in pumps:
        thread.start()

    def consume(index: int) -> Decimal:
        tenant = "t-one" if index % 2 else "t-hot"
        taken = Decimal(0)
        while True:
            answer = service.consume(tenant, "executions", Decimal(1))
            if not answer.allowed:
                return taken
            taken += answer.quantity

    barrier_free = ThreadPoolExecutor(max_workers=THREADS)
    with barrier_free as pool:
        granted = sum(pool.map(consume, range(THREADS)), Decimal(0))
    consumers_done.set()
    for thread in pumps:
        thread.join(120)
    assert not any(t.is_alive() for t in pumps)
    # The event source mapping recreated (or a batch retried wholesale): everything again, other boundaries.
    handler = load_handler("quota_events")
    handler.processor.use(QuotaEventProcessor(settings, publisher=EventPublisher(settings, flaky)))
    replay = threading.Thread(target=pump, args=(poller(23),), daemon=True)
    replay.start()
    replay.join(120)

    assert granted == 600  # both quotas exactly exhausted
    events = drain_bus(bus_server["sqs"], bus_server["names"][EVENTS_TAP_ENV], wait_seconds=1)
    seen = Counter((e["detail"]["tenant_id"], e["detail"]["threshold_percent"]) for e in events)
    assert seen == {
        **{("t-one", p): 1 for p in ("10", "25", "50", "80", "100")},
        **{("t-hot", p): 1 for p in ("50", "80", "100")},
    }
    assert len({e["detail"]["event_id"] for e in events}) == len(events) == 8
    # Each event's `used` is at or past its threshold, of the whole quota (all shards).
    for e in events:
        assert (
            Decimal(e["detail"]["used"])
            >= Decimal(e["detail"]["limit"]) * Decimal(e["detail"]["threshold_percent"]) / 100
        )
        assert e["detail"]["limit"] == "300"
    markers = client.scan(
        TableName=table,
        FilterExpression="begins_with(pk, :p)",
        ExpressionAttributeValues={":p": {"S": "EVENTS#"}},
        ConsistentRead=True,
    )["Items"]
    assert sorted(m["status"]["S"] for m in markers) == ["published"] * 8
    # The faults really happened (else this proves nothing about retries).
    assert injected["function_error"] >= 3
    assert flaky.refused == 8  # each event's first PutEvents
    print(
        f"\nthreshold events: 8 exactly once; {injected['batches']} stream invocations, "
        f"{injected['function_error']} injected function errors, {flaky.refused} refused PutEvents"
    )


def test_32_containers_reporting_32_shards_of_one_quota_at_once_publish_each_threshold_once(
    ddb_local_tables: dict[str, str], dynamodb_local: Any, bus_server: dict[str, Any]
) -> None:
    shards, per_shard, used = 32, 10, 6  # 192 of 320 used: 60 %, past 50 % only
    layout: dict[str, Any] = dict(limit=per_shard, shards=shards, total_limit=shards * per_shard, plan_id="small_hot")
    client = boto3.client("dynamodb", endpoint_url=dynamodb_local.endpoint_url, region_name="us-east-1", config=CONFIG)
    table = ddb_local_tables[resources.BILLING_TABLE.env_var]
    for shard in range(shards):
        keys, image = counter_image("t-wide", "executions", used, shard=shard, **layout)
        client.put_item(TableName=table, Item=serialize({**keys, **image}))
    records = [counter_write("t-wide", "executions", used - 1, used, shard=s, **layout) for s in range(shards)]
    settings = get_settings()
    start = threading.Barrier(shards)

    def container(record: dict[str, Any]) -> list[str]:
        processor = QuotaEventProcessor(settings, ledger=EventLedger(settings, client=client))  # its own state
        start.wait()
        result = processor.process([record])
        assert result.failed_from is None
        return result.published

    with ThreadPoolExecutor(max_workers=shards) as pool:
        published = [event_id for ids in pool.map(container, records) for event_id in ids]
    events = drain_bus(bus_server["sqs"], bus_server["names"][EVENTS_TAP_ENV], wait_seconds=1)
    assert len(published) == 1
    assert [(e["detail"]["threshold_percent"], e["detail"]["used"]) for e in events] == [("50", "192")]
