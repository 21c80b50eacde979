"""Reports metered usage to Stripe Billing meters, every unit exactly once.

What is reported: for each tenant whose plan marks a resource `metered`, the hourly usage aggregates of
that resource, as meter events (customer id, value, timestamp = the hour's start) under the resource
type's `meter_event_name` from the plan catalog. The whole usage is reported; included units and
overage are priced by the Stripe price (graduated tiers), not here.

Exactly once, per tenant x resource x hour (`metering.repository` holds the watermarks):

1. read the hour's aggregate total T and its watermark R (units already reported);
2. if T > R, *claim* [R, T) with a conditional write (no claim in flight, R unchanged);
3. send one meter event of T - R units whose `identifier` is derived from (tenant, resource, hour, T);
4. *commit*: R := T, claim removed (conditional on the claim).

A crash or a Stripe error after 2 leaves the claim; the next run resends it unchanged (same identifier,
same idempotency key) and commits. If the first send did reach Stripe, Stripe answers the resend from
its idempotency cache or rejects the identifier as a duplicate; both mean "delivered", so nothing is
billed twice, and nothing is skipped because the claim stays until a send is confirmed. Usage arriving
later for an already reported hour raises T, and the next run reports T - R as its own event with its
own identifier. Concurrent runs cannot claim overlapping units (step 2 is conditional); a run that
finds another's claim resends it, which Stripe deduplicates. Stripe keeps identifiers unique for at
least 24 hours, far longer than a claim lives (the next run, 15 minutes later, finishes it).

Which hours are looked at: per metered resource and day of the look-back window, one query of the
day totals (aggregates gsi1) lists the tenants with usage; one batch read of the day watermarks keeps
only the tenant-days with something left to report (or a claim in flight), and one batch read of their
subscriptions keeps the metered ones; only those are read hour by hour, by `workers` threads (distinct
tenant-days touch distinct watermark items, so they run in parallel safely).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from billing_platform.dynamodb import utc_now
from billing_platform.errors import BillingProviderError, ProviderRateLimitError, ProviderUnavailableError
from billing_platform.metering.repository import HourWatermark, MeterWatermarkRepository, PendingReport
from billing_platform.providers.meter_events import MeterEvent, MeterEventSender
from billing_platform.quantities import ZERO
from billing_platform.settings import Settings, get_settings
from billing_platform.subscriptions.models import SubscriptionRecord
from billing_platform.usage.models import Granularity, bucket_label, bucket_start
from billing_platform.usage.repository import AggregateRepository

logger = logging.getLogger(__name__)

# Stripe accepts meter event timestamps up to 35 days old; usage older than that is refused at ingest.
LOOKBACK_DAYS = 35
# A claim's timestamp is never older than this, so Stripe accepts late usage of the window's first hours
# (the claim stores it: a resend is identical).
OLDEST_EVENT_AGE = timedelta(days=35) - timedelta(hours=1)
# After this many consecutive "Stripe is unavailable / rate limiting" failures the run stops early:
# the claims stay and the next run resumes, instead of burning the timeout on a Stripe outage.
MAX_CONSECUTIVE_OUTAGES = 3
# Subscription statuses whose usage is reported (past_due / unpaid usage is still owed).
REPORTED_STATUSES = frozenset({"active", "trialing", "past_due", "unpaid"})


def meter_identifier(tenant_id: str, resource_type: str, hour: str, cumulative: Decimal) -> str:
    """The meter event identifier of "units up to `cumulative` of this tenant's `resource_type` in
    `hour`": the same inputs always give the same identifier, different ones never share it."""
    amount = format(cumulative.normalize(), "f")
    digest = hashlib.sha256(f"{tenant_id}\x1f{resource_type}\x1f{hour}\x1f{amount}".encode()).hexdigest()
    return f"bp_{hour.replace('-', '')}_{digest[:40]}"


@dataclass
class MeterRunReport:
    """What one run did. `lag_seconds`: age of the oldest hour still holding usage this run could not
    report (0 when everything it saw is reported)."""

    started_at: datetime
    tenant_days_checked: int = 0
    hours_checked: int = 0
    events_sent: int = 0
    events_already_delivered: int = 0
    events_failed: int = 0
    claims_lost: int = 0
    units_reported: dict[str, Decimal] = field(default_factory=dict)
    skipped_unmetered: int = 0
    stopped_early: bool = False
    lag_seconds: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)

    def absorb(self, part: MeterRunReport) -> None:
        """Add the counts of one tenant-day's partial report (lag is computed by the run)."""
        self.tenant_days_checked += part.tenant_days_checked
        self.hours_checked += part.hours_checked
        self.events_sent += part.events_sent
        self.events_already_delivered += part.events_already_delivered
        self.events_failed += part.events_failed
        self.claims_lost += part.claims_lost
        self.skipped_unmetered += part.skipped_unmetered
        self.stopped_early = self.stopped_early or part.stopped_early
        self.failures += part.failures
        for resource, units in part.units_reported.items():
            self.units_reported[resource] = self.units_reported.get(resource, ZERO) + units

    def to_dict(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at.isoformat(),
            "tenant_days_checked": self.tenant_days_checked,
            "hours_checked": self.hours_checked,
            "events_sent": self.events_sent,
            "events_already_delivered": self.events_already_delivered,
            "events_failed": self.events_failed,
            "claims_lost": self.claims_lost,
            "units_reported": {k: str(v) for k, v in sorted(self.units_reported.items())},
            "skipped_unmetered": self.skipped_unmetered,
            "stopped_early": self.stopped_early,
            "lag_seconds": self.lag_seconds,
            "failures": self.failures[:20],
        }


class _StopRun(Exception):
    """Stripe keeps failing: leave the rest for the next run."""


@dataclass
class _Tenant:
    record: SubscriptionRecord | None
    metered: frozenset[str]


class MeterReporter:
    """One run reports every unreported metered unit it can see (see the module docstring)."""

    def __init__(
        self,
        sender: MeterEventSender,
        *,
        settings: Settings | None = None,
        watermarks: MeterWatermarkRepository | None = None,
        aggregates: AggregateRepository | None = None,
        clock: Callable[[], datetime] = utc_now,
        lookback_days: int = LOOKBACK_DAYS,
        should_continue: Callable[[], bool] = lambda: True,
        workers: int = 1,
        on_progress: Callable[[int, int], None] = lambda _done, _total: None,
    ) -> None:
        self._settings = settings or get_settings()
        self._sender = sender
        self._watermarks = watermarks or MeterWatermarkRepository(self._settings)
        self._aggregates = aggregates or AggregateRepository(self._settings)
        self._clock = clock
        self._lookback_days = lookback_days
        self._should_continue = should_continue
        self._workers = workers
        self._on_progress = on_progress  # (tenant-days done, tenant-days to do), from any worker thread

    def metered_resources(self) -> list[str]:
        """Resource types that some plan meters."""
        return sorted(
            {r for plan in self._settings.catalog.plans.values() for r, q in plan.quotas.items() if q.metered}
        )

    def run(self) -> MeterRunReport:
        """Report every unreported unit of the look-back window. Stripe's refusals and outages are
        counted in the report (their claims wait for the next run); an AWS error propagates, so the
        invocation fails and alarms, leaving only claims that the next run finishes."""
        now = self._clock()
        report = MeterRunReport(started_at=now)
        days = [bucket_label(Granularity.DAY, now - timedelta(days=n)) for n in range(self._lookback_days, -1, -1)]
        totals: dict[tuple[str, str, str], Decimal] = {}
        for resource in self.metered_resources():
            for day in days:
                for tenant, total in self._aggregates.bucket_totals(resource, Granularity.DAY, day).items():
                    totals[(tenant, resource, day)] = total
        marks = self._watermarks.days(totals)
        behind: list[tuple[tuple[str, str, str], int]] = []
        for key in sorted(totals, key=lambda k: (k[2], k[0], k[1])):
            mark = marks.get(key)
            reported, open_claims = (mark.reported, mark.open_claims) if mark else (ZERO, 0)
            if totals[key] > reported or open_claims > 0:
                behind.append((key, open_claims))
        tenants = self._tenants({tenant_id for (tenant_id, _, _), _ in behind})
        work: list[tuple[_Tenant, str, str, str, bool]] = []
        for (tenant_id, resource, day), open_claims in behind:
            metered = resource in tenants[tenant_id].metered
            if not metered and open_claims <= 0:
                report.skipped_unmetered += 1
                continue
            work.append((tenants[tenant_id], tenant_id, resource, day, metered))

        stop = threading.Event()
        progress_lock = threading.Lock()
        done = 0

        def finished_one() -> None:
            nonlocal done
            with progress_lock:
                done += 1
                self._on_progress(done, len(work))

        def report_one(item: tuple[_Tenant, str, str, str, bool]) -> tuple[MeterRunReport, datetime | None]:
            tenant, tenant_id, resource, day, metered = item
            part = MeterRunReport(started_at=now)
            if stop.is_set() or not self._should_continue():
                part.stopped_early = True
                return part, bucket_start(Granularity.DAY, day)
            part.tenant_days_checked = 1
            try:
                left = self._report_day(tenant, tenant_id, resource, day, metered, part)
            except _StopRun:
                stop.set()
                part.stopped_early = True
                left = bucket_start(Granularity.DAY, day)
            finished_one()
            return part, left

        # Tenant-days are independent (their watermarks are distinct items): a pool overlaps the Stripe
        # round trips, which bound a run's throughput.
        if self._workers > 1 and len(work) > 1:
            with ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="meter") as pool:
                results = list(pool.map(report_one, work))
        else:
            results = [report_one(item) for item in work]
        oldest_unreported: datetime | None = None
        for part, left in results:
            report.absorb(part)
            oldest_unreported = _min(oldest_unreported, left)
        if oldest_unreported is not None:
            report.lag_seconds = max(0, int((now - oldest_unreported).total_seconds()))
        logger.info("meter report run finished", extra={"report": report.to_dict()})
        self._watermarks.record_run(report.started_at, report.lag_seconds, report.events_sent, report.events_failed)
        return report

    def _tenants(self, tenant_ids: set[str]) -> dict[str, _Tenant]:
        records = self._watermarks.subscriptions(tenant_ids)
        return {tenant_id: self._tenant(records.get(tenant_id)) for tenant_id in tenant_ids}

    def _tenant(self, record: SubscriptionRecord | None) -> _Tenant:
        if record is None or record.plan_id is None or record.status not in REPORTED_STATUSES:
            return _Tenant(record, frozenset())
        plan = self._settings.catalog.plans.get(record.plan_id)
        if plan is None:
            return _Tenant(record, frozenset())
        return _Tenant(record, frozenset(r for r, q in plan.quotas.items() if q.metered))

    def _report_day(
        self, tenant: _Tenant, tenant_id: str, resource: str, day: str, metered: bool, report: MeterRunReport
    ) -> datetime | None:
        """Report one tenant x resource x day; returns the start of its oldest hour left unreported."""
        hour_totals = self._aggregates.bucket_rows(tenant_id, resource, Granularity.HOUR, f"{day}T00", f"{day}T23")
        marks = self._watermarks.hours(tenant_id, resource, day)
        oldest: datetime | None = None
        consecutive_outages = 0
        for hour in sorted(set(hour_totals) | {h for h, m in marks.items() if m.pending}):
            report.hours_checked += 1
            mark = marks.get(hour, HourWatermark(hour))
            total = hour_totals.get(hour, ZERO)
            try:
                done = self._report_hour(tenant, tenant_id, resource, hour, total, mark, metered=metered, report=report)
                consecutive_outages = 0
            except (ProviderUnavailableError, ProviderRateLimitError) as exc:
                self._failed(report, tenant_id, resource, hour, exc)
                consecutive_outages += 1
                done = False
                if consecutive_outages >= MAX_CONSECUTIVE_OUTAGES:
                    raise _StopRun from exc
            except BillingProviderError as exc:
                self._failed(report, tenant_id, resource, hour, exc)
                done = False
            if not done:
                oldest = _min(oldest, bucket_start(Granularity.HOUR, hour))
        return oldest

    def _report_hour(
        self,
        tenant: _Tenant,
        tenant_id: str,
        resource: str,
        hour: str,
        total: Decimal,
        mark: HourWatermark,
        *,
        metered: bool,
        report: MeterRunReport,
    ) -> bool:
        """True when everything seen for this hour is reported (or was never meant to be)."""
        reported = mark.reported
        if mark.pending is not None:
            # A claim left by a crash, a failed send or a concurrent run: finish it exactly as claimed.
            if not self._deliver(tenant_id, resource, hour, mark.pending, report):
                return True  # another reporter committed it first
            reported = mark.pending.to
        if not metered or total <= reported:
            if total < reported:
                logger.error(
                    "meter watermark above the usage total",
                    extra={"tenant_id": tenant_id, "resource": resource, "hour": hour, "total": str(total)},
                )
            return True
        record = tenant.record
        assert record is not None  # metered implies a subscription record
        resource_type = self._settings.catalog.require_resource_type(resource)
        pending = PendingReport(
            from_=reported,
            to=total,
            identifier=meter_identifier(tenant_id, resource, hour, total),
            event_name=resource_type.meter_event_name,
            customer_id=record.customer_id,
            event_ts=max(bucket_start(Granularity.HOUR, hour), self._clock() - OLDEST_EVENT_AGE),
        )
        if not self._watermarks.claim(tenant_id, resource, hour, pending):
            report.claims_lost += 1  # another run claimed it (or reported meanwhile): it finishes it
            return True
        self._deliver(tenant_id, resource, hour, pending, report)
        return True

    def _deliver(
        self, tenant_id: str, resource: str, hour: str, pending: PendingReport, report: MeterRunReport
    ) -> bool:
        """Send a claimed report and commit it. False if another reporter had committed it already."""
        outcome = self._sender.send(
            MeterEvent(
                event_name=pending.event_name,
                customer_id=pending.customer_id,
                value=pending.delta,
                timestamp=pending.event_ts,
                identifier=pending.identifier,
            )
        )
        committed = self._watermarks.commit(tenant_id, resource, hour, pending)
        if outcome.delivered_before:
            report.events_already_delivered += 1
        else:
            report.events_sent += 1
            report.units_reported[resource] = report.units_reported.get(resource, ZERO) + pending.delta
        logger.info(
            "meter event delivered",
            extra={
                "tenant_id": tenant_id,
                "resource": resource,
                "hour": hour,
                "value": str(pending.delta),
                "identifier": pending.identifier,
                "outcome": outcome.value,
                "committed": committed,
            },
        )
        return committed

    @staticmethod
    def _failed(report: MeterRunReport, tenant_id: str, resource: str, hour: str, exc: BillingProviderError) -> None:
        report.events_failed += 1
        report.failures.append({"tenant_id": tenant_id, "resource": resource, "hour": hour, "error": exc.code})
        logger.warning(
            "meter event not delivered; the claim stays for the next run",
            extra={
                "tenant_id": tenant_id,
                "resource": resource,
                "hour": hour,
                "error": exc.code,
                "provider_code": exc.provider_code,
                "request_id": exc.request_id,
            },
        )


def _min(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)
