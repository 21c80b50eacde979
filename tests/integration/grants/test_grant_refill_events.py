"""A grant refilled by a reservation's give-back and used up again publishes ONE `grant.depleted` event:
the stable event id (`grant.depleted:<tenant>:<grant id>`) claims one ledger marker per grant, so the
second `remaining > 0 -> 0` transition finds it and publishes nothing (real quota_events handler on moto).
The marker is remembered GRANT_EVENT_MEMORY (400 days) from the first use-up."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from billing_platform import resources
from billing_platform.events.stream import GRANT_EVENT_MEMORY
from local_stack.provision import EVENTS_TAP_ENV, create_event_bus, create_queue, create_tables
from tests.conftest import reset_caches
from tests.factories.billing_events import BILLING_STREAM_ARN, drain_bus, grant_image
from tests.factories.handlers import load_handler
from tests.factories.lambda_context import LambdaContext
from tests.factories.streams import failed_sequence_numbers, modify, stream_event


@pytest.fixture
def bus(env: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
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
        yield {"names": names, "sqs": sqs}
        reset_caches()


def change(grant_id: str, before: int, after: int, at: datetime) -> dict[str, Any]:
    keys, old = grant_image("t_r", grant_id, resource_type="tokens", remaining=before)
    _, new = grant_image("t_r", grant_id, resource_type="tokens", remaining=after)
    return modify(keys, old, new, stream_arn=BILLING_STREAM_ARN, created_at=at)


def test_a_refill_then_a_second_use_up_publishes_no_second_depletion(bus: dict[str, Any]) -> None:
    handler = load_handler("quota_events")
    first = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    used_up = change("grt_00000000000000d1", 25, 0, first)
    refilled = change("grt_00000000000000d1", 0, 30, first + timedelta(minutes=5))  # a cancel gave 30 back
    again = change("grt_00000000000000d1", 30, 0, first + timedelta(days=40))  # used up again, much later
    other = change("grt_00000000000000d2", 10, 0, first + timedelta(days=40))  # another grant: its own event

    def run(*records: dict[str, Any]) -> None:
        assert failed_sequence_numbers(handler.handler(stream_event(*records), LambdaContext())) == []

    run(used_up, refilled)
    run(again)
    run(used_up, refilled, again, other)  # redelivered, in one batch
    events = drain_bus(bus["sqs"], bus["names"][EVENTS_TAP_ENV])
    depleted = [e for e in events if e["detail-type"] == resources.GRANT_DEPLETED]
    assert sorted(e["detail"]["grant_id"] for e in depleted) == ["grt_00000000000000d1", "grt_00000000000000d2"]
    assert len(events) == len(depleted)  # the refill itself is no event
    assert timedelta(days=40) < GRANT_EVENT_MEMORY  # the window this relies on (see the report)
