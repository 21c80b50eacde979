"""The library's top-consumer range (`whole_hours`): the document passes `datetime.utcnow()` values
(naive, not on the hour); the HTTP API keeps its strict contract (`requested_hours`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from billing_platform.errors import ValidationError
from billing_platform.usage.queries import requested_hours, whole_hours

NOW = datetime(2026, 11, 27, 12, 30, tzinfo=UTC)


def test_naive_times_are_utc_and_the_range_widens_to_whole_hours() -> None:
    start, end = whole_hours(datetime(2026, 11, 20, 9, 59, 59), datetime(2026, 11, 27, 9, 0, 1))
    assert (start, end) == (datetime(2026, 11, 20, 9, tzinfo=UTC), datetime(2026, 11, 27, 10, tzinfo=UTC))


def test_an_aligned_range_is_unchanged_and_other_zones_are_converted() -> None:
    plus_two = timezone(timedelta(hours=2))
    start, end = whole_hours(datetime(2026, 11, 20, 11, tzinfo=plus_two), datetime(2026, 11, 20, 14, tzinfo=plus_two))
    assert (start, end) == (datetime(2026, 11, 20, 9, tzinfo=UTC), datetime(2026, 11, 20, 12, tzinfo=UTC))


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (datetime(2026, 11, 20, 9), datetime(2026, 11, 20, 10, tzinfo=UTC)),
        (datetime(2026, 11, 20, 9, 30, tzinfo=UTC), datetime(2026, 11, 20, 10, tzinfo=UTC)),
    ],
    ids=["naive", "off-hour"],
)
def test_the_http_contract_stays_strict(start: datetime, end: datetime) -> None:
    with pytest.raises(ValidationError):
        requested_hours(start, end, NOW)
    aligned = (datetime(2026, 11, 20, 9, tzinfo=UTC), end.replace(minute=0, tzinfo=UTC))
    assert requested_hours(*aligned, NOW) == aligned


def test_the_http_defaults_are_the_30_days_up_to_the_end_of_this_hour() -> None:
    end = datetime(2026, 11, 27, 13, tzinfo=UTC)
    assert requested_hours(None, None, NOW) == (end - timedelta(days=30), end)


def test_any_year_is_answered_with_a_validation_error_not_a_crash() -> None:
    ancient = datetime(204, 3, 13, 7, 56, 3, tzinfo=UTC)
    with pytest.raises(ValidationError, match="on the hour"):
        requested_hours(ancient, datetime(2026, 11, 20, 10, tzinfo=UTC), NOW)
    assert whole_hours(ancient, ancient)[0] == datetime(204, 3, 13, 7, tzinfo=UTC)
    beyond = datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-1)))  # no UTC form
    with pytest.raises(ValidationError, match="outside the range"):
        whole_hours(ancient, beyond)
    with pytest.raises(ValidationError, match="outside the range"):
        requested_hours(None, beyond, NOW)
