"""Usage answers over HTTP: a tenant's daily trend and usage series (by hour, day or month, optionally
grouped by a dimension or by entity), and the platform's top consumers and top tenants (operators)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_platform.api.app import ApiTag, Path, Query, create_app
from billing_platform.api.callers import operator_actor, tenant_caller
from billing_platform.container import PerContainer
from billing_platform.ids import TENANT_ID_MAX_LENGTH, TENANT_ID_PATTERN
from billing_platform.observability import logger, metrics, tracer
from billing_platform.settings import get_settings
from billing_platform.usage.models import SeriesQuery
from billing_platform.usage.queries import (
    MAX_GROUPS,
    MAX_TOP_LIMIT,
    MAX_TREND_DAYS,
    UsageAggregator,
    aligned_range,
    granularity_of,
    requested_hours,
)
from billing_platform.usage.schemas import TopConsumersOut, TopTenantsOut, UsageSeriesOut, UsageTrendOut

app = create_app(title="Usage queries")
aggregator = PerContainer(lambda: UsageAggregator().sync)

TenantId = Annotated[str, Path(min_length=1, max_length=TENANT_ID_MAX_LENGTH, pattern=TENANT_ID_PATTERN)]
ResourceType = Annotated[str, Query(min_length=1, max_length=64)]
Days = Annotated[int, Query(ge=1, le=MAX_TREND_DAYS)]
Limit = Annotated[int, Query(ge=1, le=MAX_TOP_LIMIT)]
Instant = Annotated[datetime | None, Query(description="ISO 8601 with a timezone, on the hour, from year 2000")]
GroupLimit = Annotated[int, Query(ge=1, le=MAX_GROUPS, description="How many groups (most usage first)")]
Bound = Annotated[datetime, Query(description="ISO 8601 with a timezone, on a boundary of the granularity")]
GranularityName = Annotated[str, Query(pattern="^(hour|day|month)$", description="hour, day or month")]
GroupBy = Annotated[
    str | None, Query(min_length=1, max_length=32, description="A declared dimension of the resource, or entity")
]
Dimension = Annotated[str | None, Query(min_length=1, max_length=32, description="A declared dimension")]
Value = Annotated[str | None, Query(min_length=1, max_length=64, description="The value of `dimension` to rank by")]


@app.get(
    "/v1/tenants/<tenant_id>/usage",
    operation_id="getUsageTrend",
    summary="Get the tenant's daily usage of a resource over the last days",
    tags=[ApiTag.USAGE],
)
@tracer.capture_method(capture_response=False)
def usage_trend(tenant_id: TenantId, resource_type: ResourceType, days: Days = 30) -> UsageTrendOut:
    tenant_caller(app, tenant_id)
    return UsageTrendOut.model_validate(aggregator().get_usage_trends(tenant_id, resource_type, days).to_dict())


@app.get(
    "/v1/usage/top",
    operation_id="listTopConsumers",
    summary="List the tenants that used a resource most over a range of whole hours",
    tags=[ApiTag.USAGE],
)
@tracer.capture_method(capture_response=False)
def top_consumers(
    resource_type: ResourceType, start: Instant = None, end: Instant = None, limit: Limit = 10
) -> TopConsumersOut:
    operator_actor(app)
    start_at, end_at = requested_hours(start, end, datetime.now(UTC))  # 422 unless whole hours, in range
    top = aggregator().get_top_consumers(resource_type, start_at, end_at, limit)
    return TopConsumersOut.model_validate(
        {
            "resource_type": resource_type,
            "start": start_at.isoformat(),
            "end": end_at.isoformat(),
            "items": [t.to_dict() for t in top],
        }
    )


@app.get(
    "/v1/tenants/<tenant_id>/usage/series",
    operation_id="getUsageSeries",
    summary="Get the tenant's usage per hour, day or month over a range, optionally grouped by dimension or entity",
    tags=[ApiTag.USAGE],
)
@tracer.capture_method(capture_response=False)
def usage_series(  # the route's query parameters
    tenant_id: TenantId,
    resource_type: ResourceType,
    start: Bound,
    end: Bound,
    granularity: GranularityName = "day",
    group_by: GroupBy = None,
    limit: GroupLimit = 10,
) -> UsageSeriesOut:
    caller = tenant_caller(app, tenant_id)
    unit = granularity_of(granularity)
    start_at, end_at = aligned_range(unit, start, end, strict=True)  # 422 unless on boundaries, in range
    # An entity's portal token reads its own entity's usage only (billing_platform.portal).
    only = caller.entity_id if caller.is_portal else None
    query = SeriesQuery(tenant_id, resource_type, unit, start_at, end_at, group_by, limit, entity_id=only)
    series = aggregator().series(query)
    return UsageSeriesOut.of(series, sorted(get_settings().catalog.require_resource_type(resource_type).dimensions))


@app.get(
    "/v1/usage/top-tenants",
    operation_id="listTopTenants",
    summary="List the platform's top tenants of a range, optionally by one dimension value",
    tags=[ApiTag.USAGE],
)
@tracer.capture_method(capture_response=False)
def top_tenants(
    resource_type: ResourceType,
    start: Instant = None,
    end: Instant = None,
    limit: Limit = 10,
    dimension: Dimension = None,
    value: Value = None,
) -> TopTenantsOut:
    operator_actor(app)
    start_at, end_at = requested_hours(start, end, datetime.now(UTC))  # 422 unless whole hours, in range
    top = aggregator().get_top_tenants(resource_type, start_at, end_at, limit, dimension=dimension, value=value)
    return TopTenantsOut.of(top)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
