"""Threshold and grant events from billing-table stream records, through the real quota_events and
event_sweeper handlers on moto (DynamoDB, EventBridge bus with its rules, SQS): each event once, whatever
the retries, re-splits and failures in between."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from billing_platform import resources
from billing_platform.events.models import BillingEvent
from billing_platform.events.repository import EventLedger
from local_stack.provision import EVENTS_TAP_ENV, create_event_bus, create_queue, create_tables
from tests.conftest import reset_caches
from tests.factories.billing_events import (
    BILLING_STREAM_ARN,
    PERIOD_END,
    counter_image,
    counter_write,
    drain_bus,
    grant_draw,
    grant_image,
)
from tests.factories.handlers import load_handler
from tests.factories.lambda_context import LambdaContext
from tests.factories.streams import failed_sequence_numbers, insert, modify, serialize, stream_event


@pytest.fixture
def bus(env: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """moto with the tables, queues, event bus and rules of resources (as the local stack makes them)."""
    from moto import mock_aws

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        names = create_tables(boto3.client("dynamodb", region_name="us-east-1"))
        for queue in resources.QUEUES:
            names.update(create_queue(sqs, queue))
        names.update(create_event_bus(boto3.client("events", region_name="us-east-1"), sqs, resources.EVENT_BUS, names))
        for key, value in names.items():
            env.setenv(key, value)
        reset_caches()
        yield {"names": names, "sqs": sqs, "ddb": boto3.client("dynamodb", region_name="us-east-1")}
        reset_caches()


def published(bus: dict[str, Any]) -> list[dict[str, Any]]:
    return drain_bus(bus["sqs"], bus["names"][EVENTS_TAP_ENV])


def run(handler: Any, *records: dict[str, Any]) -> list[str]:
    return failed_sequence_numbers(handler.handler(stream_event(*records), LambdaContext()))


def test_each_threshold_is_published_once_with_tenant_resource_used_limit_period(bus: dict[str, Any]) -> None:
    handler = load_handler("quota_events")
    writes = [counter_write("t_a", "api_calls", b, a) for b, a in [(0, 400), (400, 500), (500, 850), (850, 1000)]]
    assert run(handler, *writes) == []
    events = published(bus)
    assert [(e["detail-type"], e["detail"]["threshold_percent"]) for e in events] == [
        (resources.QUOTA_THRESHOLD_CROSSED, "50"),
        (resources.QUOTA_THRESHOLD_CROSSED, "80"),
        (resources.QUOTA_THRESHOLD_CROSSED, "100"),
    ]
    first = events[0]
    assert first["source"] == resources.EVENT_BUS.source
    assert first["detail"] | {"event_id": "x"} == {
        "event_id": "x",
        "tenant_id": "t_a",
        "resource_type": "api_calls",
        "threshold_percent": "50",
        "used": "500",
        "limit": "1000",
        "period": {"start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"},
        "plan_id": "free",
        "policy": "hard",
        "occurred_at": first["detail"]["occurred_at"],
    }
    assert len({e["detail"]["event_id"] for e in events}) == 3
    assert all(e["detail"]["event_id"].startswith("evt_") for e in events)


def test_retried_and_resplit_batches_publish_nothing_twice(bus: dict[str, Any]) -> None:
    handler = load_handler("quota_events")
    writes = [
        counter_write("t_b", "tokens", b, a, limit=10_000) for b, a in [(0, 4_999), (4_999, 5_000), (5_000, 9_000)]
    ]
    writes.append(counter_write("t_b", "tokens", 9_000, 10_000, limit=10_000))
    assert run(handler, *writes) == []
    first = published(bus)
    # Lambda retries the batch whole, then bisected, then record by record; another container does too.
    assert run(handler, *writes) == []
    assert run(handler, *writes[:2]) == []
    assert run(handler, *writes[2:]) == []
    for write in reversed(writes):
        assert run(load_handler("quota_events"), write) == []
    assert published(bus) == []
    assert sorted(e["detail"]["threshold_percent"] for e in first) == ["100", "50", "80"]


def test_a_refused_publish_fails_that_record_and_the_retry_publishes_it_once(
    bus: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = load_handler("quota_events")
    publisher = handler.processor()._publisher
    real_client = publisher.client
    refusals = {"left": 1}

    class RefusingOnce:
        """EventBridge answering one PutEvents with a failed entry (throttled), then normally."""

        def put_events(self, **kwargs: Any) -> dict[str, Any]:
            if refusals["left"]:
                refusals["left"] -= 1
                return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "ThrottlingException"}]}
            return dict(real_client.put_events(**kwargs))

    monkeypatch.setattr(publisher, "_client", RefusingOnce())
    writes = [counter_write("t_c", "api_calls", b, a) for b, a in [(0, 500), (500, 800), (800, 1000)]]
    # The 50 % write is refused: it is the failure, and nothing after it was attempted.
    assert run(handler, *writes) == [writes[0]["dynamodb"]["SequenceNumber"]]
    assert published(bus) == []
    assert run(handler, *writes) == []
    assert sorted(e["detail"]["threshold_percent"] for e in published(bus)) == ["100", "50", "80"]


def test_a_crash_between_publish_and_marking_republishes_the_same_event(
    bus: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = load_handler("quota_events")
    ledger: EventLedger = handler.processor()._ledger
    real_mark = ledger.mark_published
    crashes = {"left": 1}

    def crash_once(event: BillingEvent, now: datetime) -> None:
        if crashes["left"]:
            crashes["left"] -= 1
            raise ConnectionError("container lost after PutEvents")
        real_mark(event, now)

    monkeypatch.setattr(ledger, "mark_published", crash_once)
    write = counter_write("t_d", "api_calls", 700, 900)
    assert run(handler, write) == [write["dynamodb"]["SequenceNumber"]]
    # A new container retries the record: its own claim is pending, so it publishes the stored event again.
    assert run(load_handler("quota_events"), write) == []
    events = published(bus)
    assert [e["detail"]["threshold_percent"] for e in events] == ["80", "80"]
    assert events[0]["detail"] == events[1]["detail"]  # same stable event id, byte-identical detail
    assert run(load_handler("quota_events"), write) == []
    assert published(bus) == []


def test_a_record_owned_by_another_pending_claim_is_left_to_its_owner_then_the_sweeper(
    bus: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = load_handler("quota_events")
    ledger: EventLedger = handler.processor()._ledger
    write = counter_write("t_e", "api_calls", 400, 600)
    event = handler.processor()._events(write, {})[0]
    # Another record claimed it and its container died before publishing (then its record was discarded).
    claimed_at = datetime.now(UTC) - timedelta(minutes=20)
    ledger.claim(event, "49000000000000000000000001", claimed_at)
    assert run(handler, write) == []
    assert published(bus) == []
    sweep = load_handler("event_sweeper").handler({"id": "sweep-1"}, LambdaContext())
    assert sweep["republished"] == [event.event_id]
    assert [e["detail"]["event_id"] for e in published(bus)] == [event.event_id]
    assert load_handler("event_sweeper").handler({"id": "sweep-2"}, LambdaContext())["republished"] == []


def test_rollover_release_and_plan_change_publish_only_new_crossings(bus: dict[str, Any]) -> None:
    handler = load_handler("quota_events")
    next_start, next_end = PERIOD_END, PERIOD_END + timedelta(days=31)
    keys, old = counter_image("t_f", "api_calls", 900)
    _, rolled = counter_image("t_f", "api_calls", 0, period_start=next_start, period_end=next_end)
    _, released = counter_image("t_f", "api_calls", 850)
    records = [
        counter_write("t_f", "api_calls", 0, 900),  # 50 and 80 of November
        modify(keys, old, released, stream_arn=BILLING_STREAM_ARN),  # a release: nothing
        counter_write("t_f", "api_calls", 850, 900),  # back over 80: already published
        modify(keys, old, rolled, stream_arn=BILLING_STREAM_ARN),  # rollover to 0: nothing
        counter_write("t_f", "api_calls", 0, 600, period_start=next_start, period_end=next_end),  # December's 50
        # Upgrade mid-December to a 10,000 limit with 600 used: 6 %, nothing; then 5,000 is its own 50 %.
        counter_write("t_f", "api_calls", 600, 5_000, limit=10_000, period_start=next_start, period_end=next_end),
    ]
    assert run(handler, *records) == []
    got = [
        (e["detail"]["period"]["start"][:7], e["detail"]["limit"], e["detail"]["threshold_percent"])
        for e in published(bus)
    ]
    assert got == [
        ("2026-11", "1000", "50"),
        ("2026-11", "1000", "80"),
        ("2026-12", "1000", "50"),
        ("2026-12", "10000", "50"),
    ]


def test_plan_thresholds_come_from_the_catalog(bus: dict[str, Any]) -> None:
    handler = load_handler("quota_events")
    pro = dict(limit=2_000_000, plan_id="pro", policy="soft")
    assert run(handler, counter_write("t_g", "tokens", 0, 2_500_000, **pro)) == []
    assert [e["detail"]["threshold_percent"] for e in published(bus)] == ["50", "80", "90", "100"]


def test_unlimited_and_retired_counters_publish_nothing(bus: dict[str, Any]) -> None:
    handler = load_handler("quota_events")
    unlimited = counter_write("t_h", "executions", 0, 10**9, limit=0, policy="unlimited")
    keys, old = counter_image("t_h", "api_calls", 999)
    _, retired = counter_image("t_h", "api_calls", 999, state="retired")
    assert run(handler, unlimited, modify(keys, old, retired, stream_arn=BILLING_STREAM_ARN)) == []
    assert published(bus) == []


def test_sharded_quota_crossings_are_read_from_all_shards_and_published_once(bus: dict[str, Any]) -> None:
    table = bus["names"][resources.BILLING_TABLE.env_var]
    shards, total = 4, 1000
    layout: dict[str, Any] = dict(shards=shards, total_limit=total, plan_id="enterprise", policy="hard")
    # Each shard's current state in the table (250 each, 620 used in all): only the total tells 50 %.
    used = [200, 150, 140, 130]
    for shard, u in enumerate(used):
        keys, image = counter_image("t_s", "storage_mb", u, limit=250, shard=shard, **layout)
        bus["ddb"].put_item(TableName=table, Item=serialize({**keys, **image}))
    # Four shards' records, each only a small step: none of them crosses 50 % of the total by itself.
    records = [
        counter_write("t_s", "storage_mb", u - 10, u, limit=250, shard=shard, **layout) for shard, u in enumerate(used)
    ]
    for record in records:  # one invocation per shard, as Lambda runs one per stream shard
        assert run(load_handler("quota_events"), record) == []
    events = published(bus)
    assert [(e["detail"]["threshold_percent"], e["detail"]["used"], e["detail"]["limit"]) for e in events] == [
        ("50", "620", "1000")
    ]


def test_grant_used_up_is_published_once_and_a_void_is_not(bus: dict[str, Any]) -> None:
    handler = load_handler("quota_events")
    keys, active = grant_image("t_g", "grt_00000000000000a1", remaining=40)
    _, voided = grant_image("t_g", "grt_00000000000000a1", remaining=0, state="voided")
    records = [
        grant_draw("t_g", "grt_00000000000000b2", 500, 120),
        grant_draw("t_g", "grt_00000000000000b2", 120, 0),
        modify(keys, active, voided, stream_arn=BILLING_STREAM_ARN),
        insert(*grant_image("t_g", "grt_00000000000000c3"), stream_arn=BILLING_STREAM_ARN),
    ]
    assert run(handler, *records) == []
    assert run(handler, *records) == []
    events = published(bus)
    assert [e["detail-type"] for e in events] == [resources.GRANT_DEPLETED]
    detail = events[0]["detail"]
    assert (detail["tenant_id"], detail["grant_id"], detail["used"], detail["limit"], detail["remaining"]) == (
        "t_g",
        "grt_00000000000000b2",
        "500",
        "500",
        "0",
    )


def test_sweeper_publishes_grants_expired_with_a_balance_once(bus: dict[str, Any]) -> None:
    table = bus["names"][resources.BILLING_TABLE.env_var]
    now = datetime.now(UTC).replace(microsecond=0)
    expired_at = now - timedelta(minutes=3)
    grants: dict[str, dict[str, Any]] = {
        "grt_0000000000000e01": dict(remaining=120, valid_until=expired_at),  # expired, balance
        "grt_0000000000000e02": dict(remaining=0, valid_until=now - timedelta(minutes=3)),  # used up first
        "grt_0000000000000e03": dict(remaining=50, valid_until=now + timedelta(hours=1)),  # still live
        "grt_0000000000000e04": dict(remaining=50, valid_until=now - timedelta(minutes=1), state="voided"),
        "grt_0000000000000e05": dict(remaining=10),  # never expires
    }
    for grant_id, shape in grants.items():
        keys, image = grant_image("t_x", grant_id, **shape)
        bus["ddb"].put_item(TableName=table, Item=serialize({**keys, **image}))
    sweeper = load_handler("event_sweeper")
    first = sweeper.handler({"id": "run-1"}, LambdaContext())
    assert len(first["expired"]) == 1
    events = published(bus)
    assert [(e["detail-type"], e["detail"]["grant_id"], e["detail"]["remaining"]) for e in events] == [
        (resources.GRANT_EXPIRED, "grt_0000000000000e01", "120")
    ]
    assert events[0]["detail"]["period"]["end"] == expired_at.isoformat().replace("+00:00", "Z")
    # Overlapping runs (the cursor's lag margin re-reads the same window) publish nothing again.
    assert load_handler("event_sweeper").handler({"id": "run-2"}, LambdaContext())["expired"] == []
    assert published(bus) == []


def test_writes_that_cross_nothing_cost_no_request_and_an_event_costs_three(bus: dict[str, Any]) -> None:
    handler = load_handler("quota_events")
    calls: list[str] = []
    for client in (handler.processor()._ledger.client, handler.processor()._publisher.client):
        client.meta.events.register("before-call.*.*", lambda model, **_: calls.append(model.name))
    quiet = [counter_write("t_q", "api_calls", n, n + 1) for n in range(0, 499)]  # below 50 %
    assert run(handler, *quiet) == []
    assert calls == []
    assert run(handler, counter_write("t_q", "api_calls", 499, 500)) == []
    assert calls == ["PutItem", "PutEvents", "UpdateItem"]  # claim, publish, mark published
