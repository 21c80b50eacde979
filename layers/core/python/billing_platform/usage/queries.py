"""Read side: usage trends per tenant and top consumers over any hour-aligned range."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from billing_platform.catalog import Catalog, load_catalog
from billing_platform.errors import ValidationError
from billing_platform.settings import Settings, get_settings
from billing_platform.usage.models import (
    Granularity,
    TopConsumer,
    TrendPoint,
    UsageTrend,
    bucket_label,
    cover_range,
    floor_to,
)
from billing_platform.usage.repository import AggregateRepository

MAX_TREND_DAYS = 366
MAX_RANGE = timedelta(days=400)
MAX_TOP_LIMIT = 100


class UsageAggregator:
    """Queries over the aggregates the stream aggregator maintains (the seed's `UsageAggregator`)."""

    def __init__(
        self,
        settings: Settings | None = None,
        repository: AggregateRepository | None = None,
        catalog: Catalog | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings or get_settings()
        self._repo = repository or AggregateRepository(self._settings)
        self._catalog = catalog or load_catalog(self._settings.plan_catalog_path)
        self._clock = clock

    def get_usage_trends(self, tenant_id: str, resource_type: str, days: int = 30) -> UsageTrend:
        """One point per UTC day for the last `days` days (today included), oldest first, zero-filled."""
        self._catalog.require_resource_type(resource_type)
        if not 1 <= days <= MAX_TREND_DAYS:
            raise ValidationError(f"days must be between 1 and {MAX_TREND_DAYS}")
        today = floor_to(Granularity.DAY, self._clock())
        labels = [bucket_label(Granularity.DAY, today - timedelta(days=n)) for n in range(days - 1, -1, -1)]
        totals = self._repo.bucket_rows(tenant_id, resource_type, Granularity.DAY, labels[0], labels[-1])
        return UsageTrend(
            tenant_id, resource_type, [TrendPoint(label, totals.get(label, Decimal(0))) for label in labels]
        )

    def get_top_consumers(
        self, resource_type: str, start_time: datetime, end_time: datetime, limit: int = 10
    ) -> list[TopConsumer]:
        """The `limit` tenants with the most usage of `resource_type` in [start_time, end_time), exact:
        whole months, days and hours tiling the range are read and merged per tenant. The aggregates'
        resolution is one hour, so both ends must be on the hour. Ties order by tenant id."""
        self._catalog.require_resource_type(resource_type)
        for name, value in (("start", start_time), ("end", end_time)):
            if value.tzinfo is None:
                raise ValidationError(f"{name} must carry a timezone")
            if value.astimezone(UTC) != floor_to(Granularity.HOUR, value):
                raise ValidationError(f"{name} must be on the hour (aggregates have hourly resolution)")
        start, end = start_time.astimezone(UTC), end_time.astimezone(UTC)
        if not start < end:
            raise ValidationError("start must be before end")
        if end - start > MAX_RANGE:
            raise ValidationError(f"the range may span at most {MAX_RANGE.days} days")
        if not 1 <= limit <= MAX_TOP_LIMIT:
            raise ValidationError(f"limit must be between 1 and {MAX_TOP_LIMIT}")
        merged: dict[str, Decimal] = defaultdict(Decimal)
        for granularity, label in cover_range(start, end):
            for tenant, total in self._repo.bucket_totals(resource_type, granularity, label).items():
                merged[tenant] += total
        ranked = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))
        return [TopConsumer(tenant, total) for tenant, total in ranked[:limit] if total > 0]
