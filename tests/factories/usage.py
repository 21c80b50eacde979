"""Usage test helpers shared by unit, integration and bench code."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any


class MemoryValues:
    """A values registry in memory (the `ValuesRegistry` the dimension gate asks), with the same rule as
    the repository's conditional write: a value is added unless `cap` other values are there."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str, str, str], set[str]] = {}
        self.calls = 0
        self._lock = threading.Lock()

    def register_value(
        self, tenant_id: str, resource_type: str, month: str, dimension: str, *, value: str, cap: int
    ) -> bool:
        with self._lock:
            self.calls += 1
            seen = self.values.setdefault((tenant_id, resource_type, month, dimension), set())
            if value not in seen and len(seen) >= cap:
                return False
            seen.add(value)
            return True


# ---------------------------------------------------------------------------------------------- answers


@dataclass(frozen=True)
class Sent:
    """One usage record as a test or bench generated it (what was sent), independent of the layer."""

    record_id: str
    tenant_id: str
    resource_type: str
    quantity: Decimal
    timestamp: datetime
    dimensions: tuple[tuple[str, str], ...] = ()
    entity_id: str | None = None


BUCKET_FORMATS = {"hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d", "month": "%Y-%m"}


class Expected:
    """Sums of what was sent, by tenant x resource x bucket and by group value, computed with strftime
    only (no layer code)."""

    def __init__(self, records: list[Sent]) -> None:
        self.records = records
        # (tenant, resource, granularity, label, group mark, value) -> quantity; mark "" = ungrouped total
        self.sums: dict[tuple[str, str, str, str, str, str], Decimal] = defaultdict(Decimal)
        for r in records:
            ts = r.timestamp.astimezone(UTC)
            groups = [("", ""), *r.dimensions]
            if r.entity_id is not None:
                groups.append(("entity", r.entity_id))
            for granularity, fmt in BUCKET_FORMATS.items():
                label = ts.strftime(fmt)
                for mark, value in groups:
                    self.sums[(r.tenant_id, r.resource_type, granularity, label, mark, value)] += r.quantity

    def top(
        self, resource: str, start: datetime, end: datetime, only: tuple[str, str] | None = None
    ) -> list[tuple[str, Decimal]]:
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for r in self.records:
            if r.resource_type != resource or not start <= r.timestamp < end:
                continue
            if only is not None and only not in r.dimensions:
                continue
            totals[r.tenant_id] += r.quantity
        return sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))


@dataclass
class AnswerCheck:
    """What a check of the answers compared, and every mismatch found (empty when exact)."""

    series: int = 0
    points: int = 0
    top_lists: int = 0
    mismatches: list[str] = field(default_factory=list)


def check_series(
    aggregator: Any,
    expected: Expected,
    span: tuple[datetime, datetime],
    check: AnswerCheck,
    tenants: set[str] | None = None,
) -> None:
    """Every tenant x resource of `expected` (or of the `tenants` named), every granularity, ungrouped and
    grouped by each dimension the records carry and by entity: each point and each group's points."""
    from billing_platform.usage.models import GRANULARITY_NAMES, floor_to, next_bucket

    start, end = span
    pairs = sorted({(r.tenant_id, r.resource_type) for r in expected.records if not tenants or r.tenant_id in tenants})
    marks: dict[str, set[str]] = defaultdict(set)
    for r in expected.records:
        marks[r.resource_type].update(name for name, _ in r.dimensions)
        if r.entity_id is not None:
            marks[r.resource_type].add("entity")
    for tenant, resource in pairs:
        for granularity, unit in GRANULARITY_NAMES.items():
            first = floor_to(unit, start)
            last = floor_to(unit, end - timedelta(microseconds=1))
            stop = next_bucket(unit, last)
            if granularity == "hour" and (stop - first) > timedelta(days=41):
                first = stop - timedelta(days=41)
            for group_by in [None, *sorted(marks[resource])]:
                got = aggregator.get_usage(
                    tenant, resource, first, stop, granularity=granularity, group_by=group_by, limit=100
                )
                check.series += 1
                fmt = BUCKET_FORMATS[granularity]
                for point in got.points:
                    check.points += 1
                    want = expected.sums.get((tenant, resource, granularity, point.start.strftime(fmt), "", ""), 0)
                    if point.quantity != want:
                        check.mismatches.append(
                            f"{tenant} {resource} {granularity} {point.start}: {point.quantity} != {want}"
                        )
                for group in got.groups:
                    for point in group.points:
                        check.points += 1
                        key = (tenant, resource, granularity, point.start.strftime(fmt), group_by or "", group.value)
                        want = expected.sums.get(key, 0)
                        if point.quantity != want:
                            check.mismatches.append(f"{key}: {point.quantity} != {want}")
                if group_by is not None:
                    values = {
                        k[5]
                        for k in expected.sums
                        if k[:3] == (tenant, resource, granularity)
                        and k[4] == group_by
                        and first.strftime(fmt) <= k[3] < stop.strftime(fmt)
                    }
                    if len(values) <= 100 and {g.value for g in got.groups} != values:
                        check.mismatches.append(f"{tenant} {resource} {granularity} groups by {group_by}")


def check_top(aggregator: Any, expected: Expected, ranges: list[tuple[datetime, datetime]], check: AnswerCheck) -> None:
    """Top tenants (100) of each range for every resource, and for every dimension value the records carry."""
    values = sorted({(r.resource_type, d) for r in expected.records for d in r.dimensions})
    resources = sorted({r.resource_type for r in expected.records})
    for start, end in ranges:
        for resource, only in [(r, None) for r in resources] + [(r, d) for r, d in values]:
            kwargs = {"dimension": only[0], "value": only[1]} if only else {}
            got = aggregator.get_top_tenants(resource, start, end, 100, **kwargs)
            check.top_lists += 1
            want = expected.top(resource, start, end, only)[:100]
            if [(t.tenant_id, t.quantity) for t in got.tenants] != want:
                check.mismatches.append(f"top {resource} {only} {start}..{end}")
