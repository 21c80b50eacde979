"""Read side: usage trends per tenant and top consumers over a range of whole hours.

Two faces, the library's convention (see `billing_platform.enforcer`): `UsageAggregator` is
async (``await aggregator.get_usage_trends(...)``), ``aggregator.sync`` the blocking
`SyncUsageAggregator` the `usage_query` Lambda and the CLI call."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from billing_platform.dynamodb import utc_now
from billing_platform.errors import ValidationError
from billing_platform.ids import TenantIdLike, tenant_id_str
from billing_platform.instants import to_utc
from billing_platform.offload import run_blocking
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
EARLIEST_YEAR = 2000


DEFAULT_TOP_DAYS = 30


def requested_hours(start_time: datetime | None, end_time: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """The HTTP API's stricter contract (`GET /v1/usage/top`): both ends carry a timezone and are on the
    hour, so the range answered is exactly the range asked. Defaults: the `DEFAULT_TOP_DAYS` days up to
    the end of the current hour. Raises `ValidationError` (422) for anything else, before any read."""
    end = _utc(end_time, "end") if end_time is not None else _hour_of(now) + timedelta(hours=1)
    if start_time is not None:
        start = _utc(start_time, "start")
    elif end.year <= EARLIEST_YEAR:
        raise ValidationError(f"end must be in {EARLIEST_YEAR + 1} or later when start is not given")
    else:
        start = end - timedelta(days=DEFAULT_TOP_DAYS)
    for name, value in (("start", start), ("end", end)):
        if value != _hour_of(value):
            raise ValidationError(f"{name} must be on the hour (aggregates have hourly resolution)")
    return start, end


def _utc(value: datetime, name: str) -> datetime:
    try:
        return to_utc(value, name)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def _hour_of(value: datetime) -> datetime:
    # Plain arithmetic, not bucket labels: any year a datetime holds (schemathesis sends year 204).
    return value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def whole_hours(start_time: datetime, end_time: datetime) -> tuple[datetime, datetime]:
    """The library's range: a naive time is UTC (what ``datetime.utcnow()`` gives); the aggregates have
    hourly resolution, so the range is widened to the whole hours it touches (start floored, end ceiled).
    `ValidationError` for a time outside the dates the platform accepts (`instants.to_utc`)."""

    def utc(value: datetime, name: str) -> datetime:
        return _utc(value.replace(tzinfo=UTC) if value.tzinfo is None else value, name)

    start, end = utc(start_time, "start_time"), utc(end_time, "end_time")
    floored_end = _hour_of(end)
    return _hour_of(start), floored_end if floored_end == end else floored_end + timedelta(hours=1)


class SyncUsageAggregator:
    """Queries over the aggregates the stream aggregator maintains, blocking face (``aggregator.sync``).

    `usage_repository` is the aggregates' repository (default: the aggregates table from the settings)."""

    def __init__(
        self,
        usage_repository: AggregateRepository | None = None,
        *,
        settings: Settings | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._settings = settings or get_settings()
        self._repo = usage_repository or AggregateRepository(self._settings)
        self._clock = clock

    def get_usage_trends(self, tenant_id: TenantIdLike, resource_type: str, days: int = 30) -> UsageTrend:
        """One point per UTC day for the last `days` days (today included), oldest first, zero-filled."""
        self._settings.catalog.require_resource_type(resource_type)
        if not 1 <= days <= MAX_TREND_DAYS:
            raise ValidationError(f"days must be between 1 and {MAX_TREND_DAYS}")
        tenant = tenant_id_str(tenant_id)
        today = floor_to(Granularity.DAY, self._clock())
        labels = [bucket_label(Granularity.DAY, today - timedelta(days=n)) for n in range(days - 1, -1, -1)]
        totals = self._repo.bucket_rows(tenant, resource_type, Granularity.DAY, labels[0], labels[-1])
        return UsageTrend(tenant, resource_type, [TrendPoint(label, totals.get(label, Decimal(0))) for label in labels])

    def get_top_consumers(
        self, resource_type: str, start_time: datetime, end_time: datetime, limit: int = 10
    ) -> list[TopConsumer]:
        """The `limit` tenants with the most usage of `resource_type` in the whole hours covering
        [start_time, end_time) (see `whole_hours`), exact: whole months, days and hours tiling the range
        are read and merged per tenant. Ties order by tenant id."""
        self._settings.catalog.require_resource_type(resource_type)
        start, end = whole_hours(start_time, end_time)
        if start.year < EARLIEST_YEAR:  # no usage is that old; bucket labels assume four-digit years
            raise ValidationError(f"start must be in {EARLIEST_YEAR} or later")
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


class UsageAggregator:
    """Usage trends and top consumers: ``await aggregator.get_usage_trends(tenant_id, "tokens", days=30)``.
    The async face of `SyncUsageAggregator` (``aggregator.sync``); reads run on the worker pool."""

    def __init__(
        self,
        usage_repository: AggregateRepository | None = None,
        *,
        settings: Settings | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._sync = SyncUsageAggregator(usage_repository, settings=settings, clock=clock)

    @property
    def sync(self) -> SyncUsageAggregator:
        """The blocking face, same methods."""
        return self._sync

    async def get_usage_trends(self, tenant_id: TenantIdLike, resource_type: str, days: int = 30) -> UsageTrend:
        """See `SyncUsageAggregator.get_usage_trends`."""
        return await run_blocking(self._sync.get_usage_trends, tenant_id, resource_type, days)

    async def get_top_consumers(
        self, resource_type: str, start_time: datetime, end_time: datetime, limit: int = 10
    ) -> list[TopConsumer]:
        """See `SyncUsageAggregator.get_top_consumers`."""
        return await run_blocking(self._sync.get_top_consumers, resource_type, start_time, end_time, limit)
