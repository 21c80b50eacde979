"""Usage records, the message envelope that carries them over SQS, and the time buckets they fold into.

Pure models: no I/O. A record is validated once, where it enters the system (tracker or HTTP ingest),
and again by the consumer (a producer outside this library may be buggy); the wire form is compact JSON.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from billing_platform.catalog import Catalog
from billing_platform.entities.models import ENTITY_ID_PATTERN
from billing_platform.errors import UndeclaredDimensionError, UnprocessableError, ValidationError
from billing_platform.ids import TENANT_ID_PATTERN, TenantIdLike, tenant_id_str
from billing_platform.instants import to_utc
from billing_platform.quantities import MAX_QUANTITY, QUANTITY_PLACES

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-.:]{0,127}$"
TENANT_PATTERN = TENANT_ID_PATTERN
METADATA_MAX_KEYS = 10
METADATA_MAX_VALUE_CHARS = 256
METADATA_MAX_BYTES = 1024
# A record may come a little from the future (client clocks drift), never much.
MAX_CLOCK_SKEW = timedelta(minutes=5)
MESSAGE_VERSION = 1
# SQS limit for one message and for the sum of one SendMessageBatch.
SQS_MAX_BYTES = 256 * 1024
_KEY_RE = re.compile(r"^[A-Za-z0-9_\-.]{1,40}$")
# Dimension values and entity ids become parts of attribute names in the read model (joined with `|`),
# so `|` is not allowed; 64 characters bound the size of a day item (catalog.MAX_TOTAL_CARDINALITY).
DIMENSION_VALUE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-.:/@+ ]{0,63}$"
_DIMENSION_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")

MetadataValue = str | int | bool


def new_record_id() -> str:
    """A fresh record id (`use_` + 32 hex digits): made once, at track time, and never again."""
    return f"use_{uuid.uuid4().hex}"


class UsageRecord(BaseModel):
    """One unit of metered usage. `record_id` makes every downstream write idempotent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    record_id: str = Field(pattern=ID_PATTERN)
    tenant_id: str = Field(pattern=TENANT_PATTERN)
    resource_type: str = Field(min_length=1, max_length=64)
    # > 0: a zero record changes no total but costs a write at every hop.
    quantity: Decimal = Field(gt=0, le=MAX_QUANTITY, decimal_places=QUANTITY_PLACES, allow_inf_nan=False)
    timestamp: datetime
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    # Declared dimensions of the resource type (catalog), e.g. {"model": "gpt-4"}; grouped in the answers.
    dimensions: dict[str, str] = Field(default_factory=dict, max_length=3)
    # The user, team or key inside the tenant that used it; always a dimension of every resource type.
    entity_id: str | None = Field(default=None, pattern=ENTITY_ID_PATTERN)

    @field_validator("quantity", mode="before")
    @classmethod
    def _exact_quantity(cls, value: Any) -> Any:
        # A float goes through its shortest repr, so 0.1 is 0.1 and not 0.1000000000000000055...
        if isinstance(value, float):
            return Decimal(repr(value))
        if isinstance(value, bool):
            raise ValueError("quantity must be a number")
        return value

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return to_utc(value, "timestamp")

    @field_validator("metadata")
    @classmethod
    def _bounded(cls, value: dict[str, MetadataValue]) -> dict[str, MetadataValue]:
        if len(value) > METADATA_MAX_KEYS:
            raise ValueError(f"metadata holds at most {METADATA_MAX_KEYS} keys")
        for key, item in value.items():
            if not _KEY_RE.match(key):
                raise ValueError(f"metadata key {key!r} must be 1-40 characters of [A-Za-z0-9_.-]")
            if isinstance(item, str) and len(item) > METADATA_MAX_VALUE_CHARS:
                raise ValueError(f"metadata value of {key!r} is longer than {METADATA_MAX_VALUE_CHARS} characters")
        if len(json.dumps(value, separators=(",", ":")).encode()) > METADATA_MAX_BYTES:
            raise ValueError(f"metadata is larger than {METADATA_MAX_BYTES} bytes")
        return value

    @field_validator("dimensions")
    @classmethod
    def _dimension_values(cls, value: dict[str, str]) -> dict[str, str]:
        for name, item in value.items():
            if not _DIMENSION_NAME_RE.match(name):
                raise ValueError(
                    f"dimension name {name!r} must be 1-32 characters of [a-z0-9_], starting with a letter"
                )
            if not isinstance(item, str) or not re.match(DIMENSION_VALUE_PATTERN, item):
                raise ValueError(
                    f"dimension {name!r}: value must be 1-64 characters of letters, digits and _-.:/@+ or space"
                )
        return value

    def to_wire(self) -> dict[str, Any]:
        """The JSON form inside a queue message (quantity as a string: exact)."""
        wire: dict[str, Any] = {
            "record_id": self.record_id,
            "tenant_id": self.tenant_id,
            "resource_type": self.resource_type,
            "quantity": str(self.quantity),
            "timestamp": self.timestamp.isoformat(),
        }
        if self.metadata:
            wire["metadata"] = self.metadata
        if self.dimensions:
            wire["dimensions"] = self.dimensions
        if self.entity_id is not None:
            wire["entity_id"] = self.entity_id
        return wire

    def wire_json(self) -> str:
        return json.dumps(self.to_wire(), separators=(",", ":"))


def check_record(record: UsageRecord, catalog: Catalog, *, now: datetime, max_age: timedelta) -> None:
    """Rules that need the catalog or a clock: a known resource type, and a timestamp inside the window
    the raw table can deduplicate (older records could outlive their raw item's TTL and count twice), and
    only dimensions the resource type declares (`UndeclaredDimensionError`)."""
    spec = catalog.require_resource_type(record.resource_type)
    undeclared = sorted(set(record.dimensions) - set(spec.dimensions))
    if undeclared:
        declared = ", ".join(sorted(spec.dimensions)) or "none"
        raise UndeclaredDimensionError(
            f"{record.resource_type} does not declare dimension {undeclared[0]!r} (declared: {declared})",
            details={"field": f"dimensions.{undeclared[0]}", "declared": sorted(spec.dimensions)},
        )
    if record.timestamp > now + MAX_CLOCK_SKEW:
        raise ValidationError("timestamp is in the future", code="timestamp_in_future")
    if record.timestamp < now - max_age:
        raise ValidationError(
            f"timestamp is older than {max_age.days} days",
            code="timestamp_too_old",
            details={"max_age_days": max_age.days},
        )


def build_record(
    tenant_id: TenantIdLike,
    resource_type: str,
    quantity: Decimal | int | float | str,
    *,
    timestamp: datetime | None = None,
    record_id: str | None = None,
    metadata: dict[str, MetadataValue] | None = None,
    dimensions: dict[str, str] | None = None,
    entity_id: str | None = None,
) -> UsageRecord:
    """Validate and build a record; raise `UnprocessableError` (422) naming the bad field."""
    try:
        qty = Decimal(quantity) if isinstance(quantity, str) else quantity
    except InvalidOperation:
        raise UnprocessableError("quantity must be a number", details={"field": "quantity"}) from None
    return parse_record(
        {
            "record_id": record_id or new_record_id(),
            "tenant_id": tenant_id_str(tenant_id),
            "resource_type": resource_type,
            "quantity": qty,
            "timestamp": timestamp or datetime.now(UTC),
            "metadata": metadata or {},
            "dimensions": dimensions or {},
            "entity_id": entity_id,
        }
    )


def parse_record(data: Any) -> UsageRecord:
    """A record from untrusted input, or `UnprocessableError` with a readable message."""
    from pydantic import ValidationError as PydanticError

    try:
        return UsageRecord.model_validate(data)
    except PydanticError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "record"
        raise UnprocessableError(f"{field}: {first.get('msg', 'invalid')}", details={"field": field}) from None


class UsageMessage(BaseModel):
    """The SQS message body: many records per message (`{"v": 1, "records": [...]}`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: int = Field(default=MESSAGE_VERSION, ge=1, le=MESSAGE_VERSION)
    records: list[UsageRecord] = Field(min_length=1, max_length=10_000)


MESSAGE_PREFIX = '{"v":1,"records":['
MESSAGE_SUFFIX = "]}"


def message_body(record_json: list[str]) -> str:
    """Assemble a message body from records already encoded with `UsageRecord.wire_json`."""
    return MESSAGE_PREFIX + ",".join(record_json) + MESSAGE_SUFFIX


def message_overhead_bytes() -> int:
    return len(MESSAGE_PREFIX) + len(MESSAGE_SUFFIX)


class Granularity(StrEnum):
    HOUR = "H"
    DAY = "D"
    MONTH = "M"


def bucket_label(granularity: Granularity, at: datetime) -> str:
    """The bucket a UTC instant falls in: `2026-11-25T10`, `2026-11-25` or `2026-11`. Built from the
    fields, not with strftime, whose `%Y` does not zero-pad years below 1000 (`204-03-13T07`): labels have a
    four-digit year for every year, so they sort as the instants they name and `bucket_start` reads them back."""
    at = at.astimezone(UTC)
    month = f"{at.year:04d}-{at.month:02d}"
    if granularity is Granularity.MONTH:
        return month
    day = f"{month}-{at.day:02d}"
    return f"{day}T{at.hour:02d}" if granularity is Granularity.HOUR else day


def bucket_start(granularity: Granularity, label: str) -> datetime:
    """The first instant of the bucket `label` names (strptime's `%Y` reads exactly four digits)."""
    fmt = {Granularity.HOUR: "%Y-%m-%dT%H", Granularity.DAY: "%Y-%m-%d", Granularity.MONTH: "%Y-%m"}[granularity]
    return datetime.strptime(label, fmt).replace(tzinfo=UTC)


def next_bucket(granularity: Granularity, start: datetime) -> datetime:
    if granularity is Granularity.HOUR:
        return start + timedelta(hours=1)
    if granularity is Granularity.DAY:
        return start + timedelta(days=1)
    return (start.replace(day=1) + timedelta(days=32)).replace(day=1)


def floor_to(granularity: Granularity, at: datetime) -> datetime:
    return bucket_start(granularity, bucket_label(granularity, at))


def cover_range(start: datetime, end: datetime) -> list[tuple[Granularity, str]]:
    """The fewest whole buckets that exactly tile the hour-aligned range [start, end): whole months
    inside it, whole days at the month edges, hours at the day edges."""
    out: list[tuple[Granularity, str]] = []
    cursor = start
    while cursor < end:
        for granularity in (Granularity.MONTH, Granularity.DAY, Granularity.HOUR):
            if floor_to(granularity, cursor) == cursor and next_bucket(granularity, cursor) <= end:
                out.append((granularity, bucket_label(granularity, cursor)))
                cursor = next_bucket(granularity, cursor)
                break
    return out


@dataclass(frozen=True)
class TrendPoint:
    date: str
    quantity: Decimal


@dataclass(frozen=True)
class UsageTrend:
    tenant_id: str
    resource_type: str
    points: list[TrendPoint]

    @property
    def total(self) -> Decimal:
        return sum((p.quantity for p in self.points), Decimal(0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "resource_type": self.resource_type,
            "days": len(self.points),
            "total": str(self.total),
            "points": [{"date": p.date, "quantity": str(p.quantity)} for p in self.points],
        }


@dataclass(frozen=True)
class TopConsumer:
    tenant_id: str
    quantity: Decimal

    def to_dict(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "quantity": str(self.quantity)}


GRANULARITY_NAMES = {"hour": Granularity.HOUR, "day": Granularity.DAY, "month": Granularity.MONTH}
# Grouping a tenant's usage by entity (the user, team or key of each record) rather than a dimension.
ENTITY = "entity"


@dataclass(frozen=True)
class SeriesQuery:
    """A checked request for a tenant's usage series (`UsageAggregator.get_usage`)."""

    tenant_id: str
    resource_type: str
    granularity: Granularity
    start: datetime
    end: datetime
    group_by: str | None = None  # a declared dimension or "entity"
    limit: int = 10
    # Only this entity's usage (an entity-scoped reader): the total, points and its one group are its own.
    entity_id: str | None = None


@dataclass(frozen=True)
class SeriesPoint:
    """The usage of one hour, day or month (`start` is its first instant, UTC)."""

    start: datetime
    quantity: Decimal


@dataclass(frozen=True)
class SeriesGroup:
    """One value of the grouping dimension (or one entity) with its own points and total over the range."""

    value: str
    total: Decimal
    points: list[SeriesPoint]


@dataclass(frozen=True)
class UsageSeries:
    """A tenant's usage of one resource type per bucket over [start, end). Grouped, `groups` are the
    `limit` values with the most usage (ties by value), `other` the usage of the values left out and
    `ungrouped` the usage of records without that dimension: total = sum(groups) + other + ungrouped.
    `complete_until`: usage stored up to this instant is in the answer (None: nothing aggregated yet)."""

    tenant_id: str
    resource_type: str
    granularity: Granularity
    start: datetime
    end: datetime
    group_by: str | None
    total: Decimal
    points: list[SeriesPoint]
    groups: list[SeriesGroup]
    other: Decimal
    ungrouped: Decimal
    complete_until: datetime | None


@dataclass(frozen=True)
class TenantUsage:
    tenant_id: str
    quantity: Decimal


@dataclass(frozen=True)
class TopTenants:
    """The tenants with the most usage of a resource type over [start, end), optionally only the usage
    carrying one dimension value; ties order by tenant id. `complete_until` as in `UsageSeries`."""

    resource_type: str
    start: datetime
    end: datetime
    dimension: str | None
    value: str | None
    tenants: list[TenantUsage]
    complete_until: datetime | None
