"""Meter event values and identifiers, Stripe's duplicate-identifier answer, and the mock's dedup."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing_platform.errors import ProviderInvalidRequestError
from billing_platform.metering.service import meter_identifier
from billing_platform.providers.meter_events import (
    MeterEvent,
    MeterEventOutcome,
    MockMeterEvents,
    is_duplicate_identifier,
)

TS = datetime(2026, 11, 25, 10, tzinfo=UTC)


def event(value: str, identifier: str = "bp_x") -> MeterEvent:
    return MeterEvent("tokens", "cus_1", Decimal(value), TS, identifier)


@pytest.mark.parametrize(
    ("value", "text"),
    [("1E+3", "1000"), ("0.000001", "0.000001"), ("12.500", "12.5"), ("999999999999999", "999999999999999")],
)
def test_values_are_sent_as_plain_decimal_strings(value: str, text: str) -> None:
    params = event(value).params()
    assert params["payload"] == {"stripe_customer_id": "cus_1", "value": text}
    assert params["timestamp"] == int(TS.timestamp())


def test_values_stripe_would_refuse_are_refused_before_sending() -> None:
    with pytest.raises(ProviderInvalidRequestError):
        event("1234567890123.456").value_text()  # 16 significant digits
    for bad in ("0", "-1", "NaN"):
        with pytest.raises(ValueError, match="positive"):
            event(bad)
    with pytest.raises(ValueError, match="1-100"):
        event("1", identifier="x" * 101)


def test_identifier_is_deterministic_and_distinct_per_cumulative_amount() -> None:
    a = meter_identifier("t1", "tokens", "2026-11-25T10", Decimal("100"))
    assert a == meter_identifier("t1", "tokens", "2026-11-25T10", Decimal("100.000"))
    others = {
        meter_identifier("t1", "tokens", "2026-11-25T10", Decimal("101")),
        meter_identifier("t1", "tokens", "2026-11-25T11", Decimal("100")),
        meter_identifier("t1", "api_calls", "2026-11-25T10", Decimal("100")),
        meter_identifier("t2", "tokens", "2026-11-25T10", Decimal("100")),
    }
    assert a not in others
    assert len(others) == 4
    assert len(a) <= 100


@pytest.mark.parametrize(
    ("code", "message", "duplicate"),
    [
        (None, "An event already exists with identifier bp_1.", True),
        ("duplicate_meter_event", "whatever", True),
        ("resource_missing", "No such customer: 'cus_1'", False),
        (None, "Invalid value", False),
    ],
)
def test_stripe_duplicate_identifier_answer_is_recognised(code: str | None, message: str, duplicate: bool) -> None:
    assert is_duplicate_identifier(code, message) is duplicate


def test_mock_honours_identifier_uniqueness_like_stripe() -> None:
    mock = MockMeterEvents()
    assert mock.send(event("5", "bp_a")) is MeterEventOutcome.CREATED
    assert mock.send(event("5", "bp_a")) is MeterEventOutcome.DUPLICATE
    assert mock.send(event("7", "bp_b")) is MeterEventOutcome.CREATED
    assert mock.total("tokens", "cus_1") == 12
    assert MeterEventOutcome.DUPLICATE.delivered_before
    assert not MeterEventOutcome.CREATED.delivered_before


def test_mock_lists_recorded_events_oldest_first_within_the_window() -> None:
    mock = MockMeterEvents()
    for i, created in enumerate((300, 100, 200, 50)):
        mock.record_event({"id": f"evt_{i}", "type": "invoice.paid" if i else "customer.created", "created": created})
    listed = list(mock.list_events(datetime.fromtimestamp(100, UTC), until=datetime.fromtimestamp(300, UTC)))
    assert [e["created"] for e in listed] == [100, 200, 300]
    only = list(mock.list_events(datetime.fromtimestamp(0, UTC), types=("customer.created",)))
    assert [e["id"] for e in only] == ["evt_0"]
