"""Read side: a tenant's usage per hour, day or month over a range (optionally grouped by one dimension
or by entity), the top tenants of a range across the platform (optionally for one dimension value), and
the older daily trend and top consumers, all answered from the read model's day items (`usage.layout`).

Two faces, the library's convention (see `billing_platform.enforcer`): `UsageAggregator` is async
(``await aggregator.get_usage(...)``), ``aggregator.sync`` the blocking `SyncUsageAggregator` the
`usage_query` Lambda and the CLI call, same methods and parameters."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from billing_platform.catalog.models import ENTITY_DIMENSION, ResourceType
from billing_platform.dynamodb import utc_now
from billing_platform.errors import UndeclaredDimensionError, ValidationError
from billing_platform.ids import TenantIdLike, tenant_id_str
from billing_platform.instants import to_utc
from billing_platform.offload import run_blocking
from billing_platform.settings import Settings, get_settings
from billing_platform.usage.layout import ENTITY_MARK, DayCells, day_of
from billing_platform.usage.models import (
    GRANULARITY_NAMES,
    Granularity,
    SeriesGroup,
    SeriesPoint,
    SeriesQuery,
    TenantUsage,
    TopConsumer,
    TopTenants,
    TrendPoint,
    UsageSeries,
    UsageTrend,
    bucket_label,
    floor_to,
    next_bucket,
)
from billing_platform.usage.repository import AggregateRepository

MAX_TREND_DAYS = 366
MAX_RANGE = timedelta(days=400)
MAX_TOP_LIMIT = 100
EARLIEST_YEAR = 2000


DEFAULT_TOP_DAYS = 30
# Points one series answer may hold (e.g. 41 days of hours, or every day of 400 days).
MAX_POINTS = 1_000
MAX_GROUPS = 100


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


def aligned_range(
    granularity: Granularity, start_time: datetime, end_time: datetime, *, strict: bool
) -> tuple[datetime, datetime]:
    """[start, end) on the granularity's boundaries. `strict` (HTTP): both ends must carry a timezone
    and be on a boundary, else `ValidationError`; otherwise (library) a naive time is UTC and the range
    is widened to the whole buckets it touches. Refused before any read: a range before 2000, empty,
    longer than MAX_RANGE or with more than MAX_POINTS buckets."""
    if strict:
        start, end = _utc(start_time, "start"), _utc(end_time, "end")
        for name, value in (("start", start), ("end", end)):
            if floor_to(granularity, value) != value:
                raise ValidationError(f"{name} must be on a {_unit(granularity)} boundary (UTC)")
    else:
        start, end = whole_hours(start_time, end_time)
        start = floor_to(granularity, start) if start.year >= EARLIEST_YEAR else start
        if end.year >= EARLIEST_YEAR and floor_to(granularity, end) != end:
            end = next_bucket(granularity, floor_to(granularity, end))
    if start.year < EARLIEST_YEAR:
        raise ValidationError(f"start must be in {EARLIEST_YEAR} or later")
    if not start < end:
        raise ValidationError("start must be before end")
    if end - start > MAX_RANGE:
        raise ValidationError(f"the range may span at most {MAX_RANGE.days} days")
    if len(_buckets(granularity, start, end, MAX_POINTS + 1)) > MAX_POINTS:
        raise ValidationError(f"the range holds more than {MAX_POINTS} {_unit(granularity)}s")
    return start, end


def _unit(granularity: Granularity) -> str:
    return {Granularity.HOUR: "hour", Granularity.DAY: "day", Granularity.MONTH: "month"}[granularity]


def granularity_of(name: str | Granularity) -> Granularity:
    if isinstance(name, Granularity):
        return name
    try:
        return GRANULARITY_NAMES[name]
    except KeyError:
        raise ValidationError(f"granularity must be one of {', '.join(GRANULARITY_NAMES)}") from None


def _buckets(granularity: Granularity, start: datetime, end: datetime, most: int) -> list[datetime]:
    out: list[datetime] = []
    cursor = start
    while cursor < end and len(out) < most:
        out.append(cursor)
        cursor = next_bucket(granularity, cursor)
    return out


def _days(start: datetime, end: datetime) -> list[tuple[str, range]]:
    """The UTC days [start, end) overlaps, each with the hours of it inside the range."""
    out: list[tuple[str, range]] = []
    cursor = floor_to(Granularity.DAY, start)
    while cursor < end:
        following = cursor + timedelta(days=1)
        first = max(start, cursor)
        last = min(end, following)
        out.append((day_of(cursor), range(first.hour, 24 if last == following else last.hour)))
        cursor = following
    return out


def _mark(spec: ResourceType, resource_type: str, dimension: str) -> str:
    """The day items' name for a grouping: a declared dimension's own name, or the entity's mark."""
    if dimension == ENTITY_DIMENSION:
        return ENTITY_MARK
    if dimension not in spec.dimensions:
        declared = ", ".join(sorted(spec.dimensions)) or "none"
        raise UndeclaredDimensionError(
            f"{resource_type} does not declare dimension {dimension!r} (declared: {declared}; or {ENTITY_DIMENSION})"
        )
    return dimension


class SyncUsageAggregator:
    """Queries over the read model the stream aggregator maintains, blocking face (``aggregator.sync``).

    `usage_repository` is the read model's repository (default: the aggregates table from the settings)."""

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

    def get_usage(
        self,
        tenant_id: TenantIdLike,
        resource_type: str,
        start_time: datetime,
        end_time: datetime,
        *,
        granularity: str | Granularity = "day",
        group_by: str | None = None,
        limit: int = 10,
    ) -> UsageSeries:
        """A tenant's usage of `resource_type` per hour, day or month over [start_time, end_time) (widened
        to whole buckets; naive times are UTC), zero-filled, oldest first. `group_by`: a declared dimension
        of the resource type or "entity": then also the `limit` values (or entities) with the most usage,
        each with its own points. One Query of at most ~400 day items."""
        self._settings.catalog.require_resource_type(resource_type)
        unit = granularity_of(granularity)
        if not 1 <= limit <= MAX_GROUPS:
            raise ValidationError(f"limit must be between 1 and {MAX_GROUPS}")
        start, end = aligned_range(unit, start_time, end_time, strict=False)
        return self.series(SeriesQuery(tenant_id_str(tenant_id), resource_type, unit, start, end, group_by, limit))

    def series(self, query: SeriesQuery) -> UsageSeries:
        """`get_usage` over a checked range (the HTTP route checks it strictly first)."""
        spec = self._settings.catalog.require_resource_type(query.resource_type)
        if query.entity_id is not None and query.group_by not in (None, ENTITY_DIMENSION):
            # Day items keep each dimension's groups apart: an entity's usage cannot be split by a dimension.
            raise ValidationError("one entity's usage is grouped by entity only")
        mark = _mark(spec, query.resource_type, query.group_by) if query.group_by is not None else None
        if query.entity_id is not None:
            mark = ENTITY_MARK
        tenant, resource_type, unit = query.tenant_id, query.resource_type, query.granularity
        start, end, group_by, limit = query.start, query.end, query.group_by, query.limit
        complete = self._repo.complete_until()
        days = self._repo.days_of(tenant, resource_type, day_of(start), day_of(end - timedelta(microseconds=1)))
        buckets = _buckets(unit, start, end, MAX_POINTS)
        totals: dict[datetime, Decimal] = defaultdict(Decimal)
        by_group: dict[str, dict[datetime, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        for day, hours in _days(start, end):
            cells = days.get(day)
            if cells is None:
                continue
            base = datetime.fromisoformat(day).replace(tzinfo=UTC)
            if query.entity_id is None:
                for hour, quantity in cells.hours.items():
                    if hour in hours:
                        totals[floor_to(unit, base + timedelta(hours=hour))] += quantity
            if mark is None:
                continue
            for (dimension, value), per_hour in cells.groups.items():
                if dimension != mark or query.entity_id not in (None, value):
                    continue
                if query.entity_id is not None:
                    for hour, quantity in per_hour.items():
                        if hour in hours:
                            totals[floor_to(unit, base + timedelta(hours=hour))] += quantity
                for hour, quantity in per_hour.items():
                    if hour in hours:
                        by_group[value][floor_to(unit, base + timedelta(hours=hour))] += quantity
        total = sum(totals.values(), Decimal(0))
        group_totals = {value: sum(points.values(), Decimal(0)) for value, points in by_group.items()}
        ranked = sorted(group_totals.items(), key=lambda kv: (-kv[1], kv[0]))
        groups = [
            SeriesGroup(value, amount, [SeriesPoint(b, by_group[value].get(b, Decimal(0))) for b in buckets])
            for value, amount in ranked[:limit]
        ]
        grouped = sum(group_totals.values(), Decimal(0))
        return UsageSeries(
            tenant_id=tenant,
            resource_type=resource_type,
            granularity=unit,
            start=start,
            end=end,
            group_by=group_by if query.entity_id is None else ENTITY_DIMENSION,
            total=total,
            points=[SeriesPoint(b, totals.get(b, Decimal(0))) for b in buckets],
            groups=groups,
            other=grouped - sum((g.total for g in groups), Decimal(0)),
            ungrouped=total - grouped if mark is not None else Decimal(0),
            complete_until=complete,
        )

    def get_top_tenants(
        self,
        resource_type: str,
        start_time: datetime,
        end_time: datetime,
        limit: int = 10,
        *,
        dimension: str | None = None,
        value: str | None = None,
    ) -> TopTenants:
        """The `limit` tenants with the most usage of `resource_type` in the whole hours covering
        [start_time, end_time) across the platform, exact; with `dimension` and `value` (e.g. "model",
        "gpt-4") only the usage carrying that value. Per day of the range the `top` index lists the day's
        tenants; their day items are read in batches, or one Query per tenant with usage on several days
        of the range. Ties order by tenant id."""
        spec = self._settings.catalog.require_resource_type(resource_type)
        if (dimension is None) != (value is None):
            raise ValidationError("dimension and value go together")
        mark = _mark(spec, resource_type, dimension) if dimension is not None else None
        if mark == ENTITY_MARK:
            raise ValidationError("top tenants are filtered by a dimension value, not by an entity")
        if not 1 <= limit <= MAX_TOP_LIMIT:
            raise ValidationError(f"limit must be between 1 and {MAX_TOP_LIMIT}")
        start, end = whole_hours(start_time, end_time)
        if start.year < EARLIEST_YEAR:
            raise ValidationError(f"start must be in {EARLIEST_YEAR} or later")
        if not start < end:
            raise ValidationError("start must be before end")
        if end - start > MAX_RANGE:
            raise ValidationError(f"the range may span at most {MAX_RANGE.days} days")
        return self.top(resource_type, (start, end), limit, (mark, value))

    def top(
        self, resource_type: str, span: tuple[datetime, datetime], limit: int, only: tuple[str | None, str | None]
    ) -> TopTenants:
        """`get_top_tenants` over a checked whole-hour range."""
        start, end = span
        mark, value = only
        complete = self._repo.complete_until()
        spans = _days(start, end)
        present: dict[str, list[str]] = defaultdict(list)  # tenant -> its days with usage in the range
        for day, _ in spans:
            for tenant in self._repo.tenants_of_day(resource_type, day):
                present[tenant].append(day)
        # A tenant with usage on one day: its item, read in batches. On several: one Query of its range,
        # which DynamoDB bills by the items' summed size (per 4 KB) where batch reads bill each item.
        cells: dict[tuple[str, str], DayCells] = {}
        single: dict[str, list[str]] = defaultdict(list)
        for tenant, days in present.items():
            if len(days) == 1:
                single[days[0]].append(tenant)
        for day, tenants in single.items():
            for tenant, found in self._repo.day_items(resource_type, day, tenants).items():
                cells[(tenant, day)] = found
        several = [t for t, days in present.items() if len(days) > 1]
        first, last = spans[0][0], spans[-1][0]
        for tenant, by_day in zip(several, self._repo.tenants_days(several, resource_type, first, last), strict=True):
            cells.update({(tenant, day): c for day, c in by_day.items()})
        merged: dict[str, Decimal] = defaultdict(Decimal)
        for day, hours in spans:
            for tenant in present:
                if (tenant, day) in cells:
                    merged[tenant] += _in_hours(cells[(tenant, day)], hours, mark, value)
        ranked = sorted(((t, q) for t, q in merged.items() if q > 0), key=lambda kv: (-kv[1], kv[0]))
        return TopTenants(
            resource_type=resource_type,
            start=start,
            end=end,
            dimension=mark,
            value=value,
            tenants=[TenantUsage(t, q) for t, q in ranked[:limit]],
            complete_until=complete,
        )

    def get_usage_trends(self, tenant_id: TenantIdLike, resource_type: str, days: int = 30) -> UsageTrend:
        """One point per UTC day for the last `days` days (today included), oldest first, zero-filled."""
        self._settings.catalog.require_resource_type(resource_type)
        if not 1 <= days <= MAX_TREND_DAYS:
            raise ValidationError(f"days must be between 1 and {MAX_TREND_DAYS}")
        tenant = tenant_id_str(tenant_id)
        today = floor_to(Granularity.DAY, self._clock())
        labels = [bucket_label(Granularity.DAY, today - timedelta(days=n)) for n in range(days - 1, -1, -1)]
        found = self._repo.days_of(tenant, resource_type, labels[0], labels[-1])
        points = [TrendPoint(label, found[label].total if label in found else Decimal(0)) for label in labels]
        return UsageTrend(tenant, resource_type, points)

    def get_top_consumers(
        self, resource_type: str, start_time: datetime, end_time: datetime, limit: int = 10
    ) -> list[TopConsumer]:
        """The `limit` tenants with the most usage of `resource_type` in the whole hours covering
        [start_time, end_time) (see `whole_hours`), exact (`get_top_tenants` without a dimension)."""
        top = self.get_top_tenants(resource_type, start_time, end_time, limit)
        return [TopConsumer(t.tenant_id, t.quantity) for t in top.tenants]


def _in_hours(cells: DayCells, hours: range, mark: str | None, value: str | None) -> Decimal:
    if mark is None:
        return cells.total if len(hours) == 24 else cells.hour_total(hours)
    per_hour = cells.groups.get((mark, value or ""), {})
    return sum((q for h, q in per_hour.items() if h in hours), Decimal(0))


class UsageAggregator:
    """Usage answers: ``await aggregator.get_usage(tenant_id, "tokens", start, end, "day", group_by="model")``,
    ``await aggregator.get_top_tenants("tokens", start, end, dimension="model", value="gpt-4")``, and the
    daily trend and top consumers. The async face of `SyncUsageAggregator` (``aggregator.sync``); reads run
    on the worker pool."""

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

    async def get_usage(
        self,
        tenant_id: TenantIdLike,
        resource_type: str,
        start_time: datetime,
        end_time: datetime,
        *,
        granularity: str | Granularity = "day",
        group_by: str | None = None,
        limit: int = 10,
    ) -> UsageSeries:
        """See `SyncUsageAggregator.get_usage`."""
        return await run_blocking(
            functools.partial(
                self._sync.get_usage,
                tenant_id,
                resource_type,
                start_time,
                end_time,
                granularity=granularity,
                group_by=group_by,
                limit=limit,
            )
        )

    async def get_top_tenants(
        self,
        resource_type: str,
        start_time: datetime,
        end_time: datetime,
        limit: int = 10,
        *,
        dimension: str | None = None,
        value: str | None = None,
    ) -> TopTenants:
        """See `SyncUsageAggregator.get_top_tenants`."""
        return await run_blocking(
            functools.partial(
                self._sync.get_top_tenants, resource_type, start_time, end_time, limit, dimension=dimension, value=value
            )
        )

    async def get_usage_trends(self, tenant_id: TenantIdLike, resource_type: str, days: int = 30) -> UsageTrend:
        """See `SyncUsageAggregator.get_usage_trends`."""
        return await run_blocking(self._sync.get_usage_trends, tenant_id, resource_type, days)

    async def get_top_consumers(
        self, resource_type: str, start_time: datetime, end_time: datetime, limit: int = 10
    ) -> list[TopConsumer]:
        """See `SyncUsageAggregator.get_top_consumers`."""
        return await run_blocking(self._sync.get_top_consumers, resource_type, start_time, end_time, limit)
