"""Every date the API accepts either works or is refused with a 422 before storage is touched: bucket
labels are zero-padded ISO dates that round-trip for any year a datetime holds (strftime's %Y does not pad
years below 1000: schemathesis once got a 502 from GET /v1/usage/top?start=0204-03-13T07...), and instants
at the edges of datetime's range (year 1 or 9999, with an offset that moves them outside it in UTC) are
refused instead of overflowing in a conversion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing_platform import resources
from billing_platform.auth.caller import Actor
from billing_platform.auth.service import ApiKeyService
from billing_platform.usage.models import Granularity, bucket_label, bucket_start, floor_to
from tests.factories.apigw import api_event, json_body
from tests.factories.handlers import load_handler
from tests.factories.lambda_context import LambdaContext

ANY_INSTANT = st.datetimes(
    min_value=datetime(1, 1, 1, 0, 0),
    max_value=datetime(9999, 12, 31, 23, 59, 59),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12, minutes=-30))]),
)
EDGES = [
    "0001-01-01T00:00:00+01:00",  # before datetime.min in UTC
    "0001-01-01T00:00:00Z",
    "0204-03-13T07:00:00Z",  # schemathesis' year 204
    "0999-12-31T23:00:00Z",
    "9999-12-31T23:00:00Z",
    "9999-12-31T23:00:00-01:00",  # after datetime.max in UTC
    "9999-12-31T23:59:59.999999-12:00",
]


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)))
def test_bucket_labels_are_zero_padded_and_round_trip_for_every_year(naive: datetime) -> None:
    at = naive.replace(tzinfo=UTC)
    for granularity, width in ((Granularity.HOUR, 13), (Granularity.DAY, 10), (Granularity.MONTH, 7)):
        label = bucket_label(granularity, at)
        assert len(label) == width, label  # four-digit year: labels sort as the instants they name
        start = bucket_start(granularity, label)
        assert start <= at
        assert bucket_label(granularity, start) == label
        assert floor_to(granularity, at) == start


@pytest.mark.parametrize(
    ("earlier", "later"), [(datetime(204, 3, 13), datetime(2026, 1, 1)), (datetime(999, 12, 31), datetime(1000, 1, 1))]
)
def test_labels_sort_in_time_order_across_digit_counts(earlier: datetime, later: datetime) -> None:
    for granularity in Granularity:
        assert bucket_label(granularity, earlier.replace(tzinfo=UTC)) < bucket_label(
            granularity, later.replace(tzinfo=UTC)
        )


def _status(module: ModuleType, event: dict[str, Any]) -> tuple[int, Any]:
    response = module.handler(event, LambdaContext())  # an exception here would be API Gateway's 502
    return response["statusCode"], json_body(response)


def _accepted_or_422(status: int, body: Any, accepted: set[int], what: str) -> None:
    assert status in accepted | {422}, f"{what}: {status} {body}"
    if status == 422:
        assert body["message"], what


HYPOTHESIS = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def test_top_consumers_range_at_any_instant_is_answered_or_refused_with_422(moto_aws: dict[str, str]) -> None:
    handler = load_handler(resources.USAGE_QUERY.name)

    def top(params: dict[str, str]) -> None:
        event = api_event("GET", "/v1/usage/top", query={"resource_type": "tokens", **params}, operator=True)
        _accepted_or_422(*_status(handler, event), {200}, f"top {params}")

    for edge in EDGES:
        top({"start": edge})
        top({"end": edge})
        top({"start": edge, "end": edge})

    @HYPOTHESIS
    @given(start=ANY_INSTANT, span=st.integers(1, 24 * 800))
    def check(start: datetime, span: int) -> None:
        start = start.replace(minute=0, second=0, microsecond=0)
        try:
            end = start + timedelta(hours=span)
        except OverflowError:
            end = start
        top({"start": start.isoformat(), "end": end.isoformat()})

    check()


def test_grant_expiry_at_any_instant_is_accepted_or_refused_with_422(moto_aws: dict[str, str]) -> None:
    ApiKeyService().create("t_dates", name="ci", actor=Actor("operator:test"))
    handler = load_handler(resources.ENTITLEMENTS.name)

    def grant(expires_at: str) -> None:
        body = {"resource_type": "tokens", "amount": "5", "expires_at": expires_at}
        event = api_event("POST", "/v1/tenants/t_dates/grants", body, operator=True)
        _accepted_or_422(*_status(handler, event), {201}, f"grant expiring {expires_at}")

    for edge in EDGES:
        grant(edge)

    @HYPOTHESIS
    @given(ANY_INSTANT)
    def check(at: datetime) -> None:
        grant(at.isoformat())

    check()


def test_api_key_expiry_at_any_instant_is_accepted_or_refused_with_422(moto_aws: dict[str, str]) -> None:
    handler = load_handler(resources.API_KEYS.name)

    def key(expires_at: str) -> None:
        event = api_event(
            "POST", "/v1/tenants/t_dates/api-keys", {"name": "k", "expires_at": expires_at}, operator=True
        )
        _accepted_or_422(*_status(handler, event), {201}, f"key expiring {expires_at}")

    for edge in EDGES:
        key(edge)

    @HYPOTHESIS
    @given(ANY_INSTANT)
    def check(at: datetime) -> None:
        key(at.isoformat())

    check()


def test_usage_timestamps_at_any_instant_are_accepted_or_refused_per_record(moto_aws: dict[str, str]) -> None:
    handler = load_handler(resources.USAGE_INGEST.name)

    def ingest(timestamp: str) -> None:
        body = {"records": [{"resource_type": "tokens", "quantity": 1, "timestamp": timestamp}]}
        status, answer = _status(handler, api_event("POST", "/v1/usage", body, tenant_id="t_dates"))
        _accepted_or_422(status, answer, {202}, f"usage at {timestamp}")
        if status == 202 and answer["rejected"]:
            assert answer["errors"][0]["message"], answer

    for edge in EDGES:
        ingest(edge)

    @HYPOTHESIS
    @given(ANY_INSTANT)
    def check(at: datetime) -> None:
        ingest(at.isoformat())

    check()
