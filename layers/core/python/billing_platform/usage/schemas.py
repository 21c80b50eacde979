"""The HTTP API's request and response bodies for usage: the batch ingest, the tenant's daily trend, the
tenant's usage series (by hour, day or month, grouped by a dimension or entity), and the operator's top
consumers and top tenants. Quantities are exact decimal strings; instants ISO 8601 in UTC."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from billing_platform.api.schemas import DecimalText, InstantText
from billing_platform.usage.ingest import MAX_RECORDS_PER_REQUEST
from billing_platform.usage.models import SeriesPoint, TopTenants, UsageSeries


class IngestRequest(BaseModel):
    """`POST /v1/usage`. Records are checked one by one by the service, so one bad record gets its own
    error and the others are still accepted."""

    model_config = ConfigDict(extra="forbid")

    records: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_RECORDS_PER_REQUEST,
        description="Each an object: resource_type, quantity (a number > 0) and optionally record_id (a record "
        "sent again with the same id counts once), tenant_id (default: the key's tenant; an operator must name "
        "it), timestamp (ISO 8601 with a timezone, default now; neither in the future nor older than the "
        "deduplication window), metadata (an object), dimensions (an object of the resource type's declared "
        'dimensions, e.g. {"model": "gpt-4o"}; an undeclared one or a new value past its cap is refused) '
        "and entity_id (the user, team or key inside the tenant)",
    )


class RecordErrorOut(BaseModel):
    index: int = Field(description="The record's position in the request's records")
    code: str
    message: str
    status: int = Field(description="The HTTP status the record alone would have been refused with")


class IngestOut(BaseModel):
    """202: the accepted records are on the usage queue; the refused ones are listed with their error."""

    accepted: int
    rejected: int
    record_ids: list[str] = Field(description="The id of each accepted record, in request order")
    errors: list[RecordErrorOut]


class TrendPointOut(BaseModel):
    date: Annotated[str, WithJsonSchema({"type": "string", "format": "date"})] = Field(description="A UTC day")
    quantity: DecimalText


class UsageTrendOut(BaseModel):
    """One point per UTC day for the last `days` days (today included), oldest first, zero-filled."""

    tenant_id: str
    resource_type: str
    days: int
    total: DecimalText = Field(description="The sum of the points")
    points: list[TrendPointOut]


class TopConsumerOut(BaseModel):
    tenant_id: str
    quantity: DecimalText


class TopConsumersOut(BaseModel):
    """The tenants with the most usage of a resource in the whole hours [start, end), most first; ties by
    tenant id."""

    resource_type: str
    start: InstantText
    end: InstantText
    items: list[TopConsumerOut]


class PointOut(BaseModel):
    start: InstantText = Field(description="First instant of the hour, day or month")
    quantity: DecimalText = Field(description="Usage in that bucket")


def _points(points: list[SeriesPoint]) -> list[PointOut]:
    return [PointOut(start=p.start.isoformat(), quantity=str(p.quantity)) for p in points]


class GroupOut(BaseModel):
    value: str = Field(description="The dimension value, or the entity id")
    total: DecimalText = Field(description="This value's usage over the range")
    points: list[PointOut]


class UsageSeriesOut(BaseModel):
    """A tenant's usage of one resource per bucket over [start, end): total = sum(groups) + other + ungrouped."""

    tenant_id: str
    resource_type: str
    granularity: str = Field(description="hour, day or month")
    start: InstantText
    end: InstantText = Field(description="Exclusive end of the range")
    group_by: str | None = Field(description="The dimension (or entity) the groups are by; null when ungrouped")
    total: DecimalText = Field(description="Usage over the range")
    points: list[PointOut] = Field(description="Every bucket of the range, oldest first, zero-filled")
    groups: list[GroupOut] = Field(description="The `limit` values with the most usage, most first, ties by value")
    other: DecimalText = Field(description="Usage of the values not among `groups`")
    ungrouped: DecimalText = Field(description="Usage of records that carry no value of `group_by`")
    complete_until: InstantText | None = Field(
        description="Usage stored in the platform before this instant is in this answer; null: nothing aggregated yet"
    )
    dimensions: list[str] = Field(
        default_factory=list, description="The resource type's declared dimensions: what group_by takes besides entity"
    )

    @classmethod
    def of(cls, series: UsageSeries, dimensions: list[str] | None = None) -> UsageSeriesOut:
        return cls(
            tenant_id=series.tenant_id,
            resource_type=series.resource_type,
            granularity={"H": "hour", "D": "day", "M": "month"}[series.granularity.value],
            start=series.start.isoformat(),
            end=series.end.isoformat(),
            group_by=series.group_by,
            total=str(series.total),
            points=_points(series.points),
            groups=[GroupOut(value=g.value, total=str(g.total), points=_points(g.points)) for g in series.groups],
            other=str(series.other),
            ungrouped=str(series.ungrouped),
            complete_until=series.complete_until.isoformat() if series.complete_until else None,
            dimensions=dimensions or [],
        )


class TopTenantsOut(BaseModel):
    """The tenants with the most usage of a resource in the whole hours [start, end), optionally only the
    usage carrying one dimension value; most first, ties by tenant id."""

    resource_type: str
    start: InstantText
    end: InstantText = Field(description="Exclusive end of the range")
    dimension: str | None = Field(description="The dimension the usage is filtered by; null: all usage")
    value: str | None = Field(description="The dimension value the usage is filtered by")
    items: list[TopConsumerOut]
    complete_until: InstantText | None = Field(
        description="Usage stored in the platform before this instant is in this answer; null: nothing aggregated yet"
    )

    @classmethod
    def of(cls, top: TopTenants) -> TopTenantsOut:
        return cls(
            resource_type=top.resource_type,
            start=top.start.isoformat(),
            end=top.end.isoformat(),
            dimension=top.dimension,
            value=top.value,
            items=[TopConsumerOut(tenant_id=t.tenant_id, quantity=str(t.quantity)) for t in top.tenants],
            complete_until=top.complete_until.isoformat() if top.complete_until else None,
        )
