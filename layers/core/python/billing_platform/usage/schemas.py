"""The HTTP answers of the usage routes (`usage_query`), as OpenAPI shows them. Quantities are exact
decimal strings; instants are ISO 8601 in UTC."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from billing_platform.usage.models import SeriesPoint, TopConsumer, TopTenants, UsageSeries, UsageTrend

_FROZEN = ConfigDict(frozen=True)


class TrendPointOut(BaseModel):
    model_config = _FROZEN

    date: str = Field(description="The UTC day, yyyy-mm-dd")
    quantity: str = Field(description="The day's usage (exact decimal)")


class UsageTrendOut(BaseModel):
    model_config = _FROZEN

    tenant_id: str
    resource_type: str
    days: int = Field(description="Number of points")
    total: str = Field(description="Sum of the points (exact decimal)")
    points: list[TrendPointOut]

    @classmethod
    def of(cls, trend: UsageTrend) -> UsageTrendOut:
        return cls(
            tenant_id=trend.tenant_id,
            resource_type=trend.resource_type,
            days=len(trend.points),
            total=str(trend.total),
            points=[TrendPointOut(date=p.date, quantity=str(p.quantity)) for p in trend.points],
        )


class ConsumerOut(BaseModel):
    model_config = _FROZEN

    tenant_id: str
    quantity: str = Field(description="The tenant's usage in the range (exact decimal)")


class TopConsumersOut(BaseModel):
    model_config = _FROZEN

    resource_type: str
    start: datetime
    end: datetime
    items: list[ConsumerOut]

    @classmethod
    def of(cls, resource_type: str, span: tuple[datetime, datetime], top: list[TopConsumer]) -> TopConsumersOut:
        return cls(
            resource_type=resource_type,
            start=span[0],
            end=span[1],
            items=[ConsumerOut(tenant_id=t.tenant_id, quantity=str(t.quantity)) for t in top],
        )


class PointOut(BaseModel):
    model_config = _FROZEN

    start: datetime = Field(description="First instant of the hour, day or month (UTC)")
    quantity: str = Field(description="Usage in that bucket (exact decimal)")


def _points(points: list[SeriesPoint]) -> list[PointOut]:
    return [PointOut(start=p.start, quantity=str(p.quantity)) for p in points]


class GroupOut(BaseModel):
    model_config = _FROZEN

    value: str = Field(description="The dimension value, or the entity id")
    total: str = Field(description="This value's usage over the range (exact decimal)")
    points: list[PointOut]


class UsageSeriesOut(BaseModel):
    model_config = _FROZEN

    tenant_id: str
    resource_type: str
    granularity: str = Field(description="hour, day or month")
    start: datetime
    end: datetime = Field(description="Exclusive end of the range")
    group_by: str | None = Field(description="The dimension (or entity) the groups are by; null when ungrouped")
    total: str = Field(description="Usage over the range (exact decimal)")
    points: list[PointOut] = Field(description="Every bucket of the range, oldest first, zero-filled")
    groups: list[GroupOut] = Field(description="The `limit` values with the most usage, most first")
    other: str = Field(description="Usage of the values not among `groups` (exact decimal)")
    ungrouped: str = Field(description="Usage of records that carry no value of `group_by` (exact decimal)")
    complete_until: datetime | None = Field(
        description="Usage stored in the platform up to this instant is in this answer; null: nothing aggregated yet"
    )

    @classmethod
    def of(cls, series: UsageSeries) -> UsageSeriesOut:
        return cls(
            tenant_id=series.tenant_id,
            resource_type=series.resource_type,
            granularity={"H": "hour", "D": "day", "M": "month"}[series.granularity.value],
            start=series.start,
            end=series.end,
            group_by=series.group_by,
            total=str(series.total),
            points=_points(series.points),
            groups=[GroupOut(value=g.value, total=str(g.total), points=_points(g.points)) for g in series.groups],
            other=str(series.other),
            ungrouped=str(series.ungrouped),
            complete_until=series.complete_until,
        )


class TopTenantsOut(BaseModel):
    model_config = _FROZEN

    resource_type: str
    start: datetime
    end: datetime = Field(description="Exclusive end of the range")
    dimension: str | None = Field(description="The dimension the usage is filtered by; null: all usage")
    value: str | None = Field(description="The dimension value the usage is filtered by")
    items: list[ConsumerOut] = Field(description="Tenants with the most usage, most first, ties by tenant id")
    complete_until: datetime | None = Field(
        description="Usage stored in the platform up to this instant is in this answer; null: nothing aggregated yet"
    )

    @classmethod
    def of(cls, top: TopTenants) -> TopTenantsOut:
        return cls(
            resource_type=top.resource_type,
            start=top.start,
            end=top.end,
            dimension=top.dimension,
            value=top.value,
            items=[ConsumerOut(tenant_id=t.tenant_id, quantity=str(t.quantity)) for t in top.tenants],
            complete_until=top.complete_until,
        )
