"""Spend threshold events from spend items' stream records, through the real quota_events handler on moto
(bus, rules, queues): each threshold of the cap once per period and cap, whatever the redeliveries; the
event carries the spend, the cap and its currency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from billing_platform import resources
from local_stack.provision import EVENTS_TAP_ENV
from tests.factories.billing_events import BILLING_STREAM_ARN, drain_bus
from tests.factories.handlers import load_handler
from tests.factories.lambda_context import LambdaContext
from tests.factories.streams import failed_sequence_numbers, insert, modify, stream_event
from tests.integration.events.test_quota_events import bus as bus

END = int((datetime.now(UTC) + timedelta(days=20)).timestamp())
KEYS = {"pk": "SPEND#t_s", "sk": f"PERIOD#{END}"}


def _image(spend: int, cap: int = 1000) -> dict[str, Any]:
    return {
        **KEYS,
        "spend": spend,
        "s_tokens": spend,
        "u_tokens": spend,
        "cap": cap,
        "thresholds": "50,80,100",
        "currency": "usd",
        "period_end": END,
    }


def _write(before: int | None, after: int, cap: int = 1000) -> dict[str, Any]:
    if before is None:
        return insert(KEYS, _image(after, cap), stream_arn=BILLING_STREAM_ARN)
    return modify(KEYS, _image(before, cap), _image(after, cap), stream_arn=BILLING_STREAM_ARN)


def test_each_spend_threshold_once_with_spend_cap_and_currency(bus: dict[str, Any]) -> None:
    handler = load_handler("quota_events")
    records = [_write(None, 300), _write(300, 520), _write(520, 790), _write(790, 1000)]
    assert failed_sequence_numbers(handler.handler(stream_event(*records), LambdaContext())) == []
    again = [_write(300, 520), _write(790, 1000)]  # a redelivery
    assert failed_sequence_numbers(handler.handler(stream_event(*again), LambdaContext())) == []
    events = drain_bus(bus["sqs"], bus["names"][EVENTS_TAP_ENV])
    spend = [e for e in events if e["detail-type"] == resources.SPEND_THRESHOLD_CROSSED]
    assert [e["detail"]["threshold_percent"] for e in spend] == ["50", "80", "100"]  # 790 is below 80 %
    assert [(e["detail"]["spend"], e["detail"]["cap"], e["detail"]["currency"]) for e in spend] == [
        ("520", "1000", "usd"),
        ("1000", "1000", "usd"),
        ("1000", "1000", "usd"),
    ]


def test_a_new_cap_has_its_own_thresholds(bus: dict[str, Any]) -> None:
    handler = load_handler("quota_events")
    assert failed_sequence_numbers(handler.handler(stream_event(_write(100, 600)), LambdaContext())) == []
    raised = modify(KEYS, _image(600, 1000), _image(700, 2000), stream_arn=BILLING_STREAM_ARN)
    assert failed_sequence_numbers(handler.handler(stream_event(raised), LambdaContext())) == []
    events = drain_bus(bus["sqs"], bus["names"][EVENTS_TAP_ENV])
    assert [(e["detail"]["cap"], e["detail"]["threshold_percent"]) for e in events] == [("1000", "50")]
