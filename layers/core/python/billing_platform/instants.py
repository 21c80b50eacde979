"""Instants from callers, refused before they reach a conversion that could overflow.

Every time the API or the library accepts is timezone-aware and is converted to UTC before it is stored,
labelled or compared with bucket edges. `datetime` holds years 1 to 9999 only, so an instant at either
edge with an offset (`0001-01-01T00:00:00+01:00`, `9999-12-31T23:00:00-01:00`) has no UTC form, and one
in 9999 has no next hour, day or month: `astimezone` or `+ timedelta` raise `OverflowError`, which a
handler would let through as a 502. `UtcInstant` turns that into a validation error (422) at the edge."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime

# A month of headroom below datetime.max: the month bucket after any accepted instant still exists.
LATEST = datetime(9999, 12, 1, tzinfo=UTC)


def to_utc(value: datetime, name: str = "time") -> datetime:
    """`value` in UTC; ValueError when it is naive, has no UTC form, or is in the last month datetime holds."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must carry a timezone")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{name} is outside the range of dates this API accepts") from None
    if utc >= LATEST:
        raise ValueError(f"{name} must be before {LATEST.date().isoformat()}")
    return utc


def to_epoch(moment: datetime) -> int:
    """Whole seconds since the epoch (how items store instants); refuses naive datetimes."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: times are timezone-aware UTC")
    return int(moment.timestamp())


def from_epoch(seconds: int | Decimal) -> datetime:
    """The UTC datetime of an epoch second."""
    return datetime.fromtimestamp(int(seconds), UTC)


def _field_to_utc(value: datetime) -> datetime:
    return to_utc(value, "the time")


UtcInstant = Annotated[AwareDatetime, AfterValidator(_field_to_utc)]
"""A pydantic field type: an ISO 8601 instant with a timezone, converted to UTC, inside datetime's range."""
