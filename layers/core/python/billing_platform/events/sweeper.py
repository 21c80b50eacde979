"""Use case, on a schedule: grants that expired with a balance (nothing is written at expiry, so no stream
record tells), and events a crashed or discarded stream record left pending in the ledger.

Expiries are found through gsi1 (`GRANT_EXPIRY#<day>#<bucket 0..15>`, sorted by `valid_until`, grant
contract), from the last run's cursor minus a margin for the index's lag; each is re-read strongly
consistent before its event is claimed, and the ledger makes overlapping runs harmless."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from billing_platform import resources
from billing_platform.dynamodb import utc_now
from billing_platform.events.detection import grant_snapshot
from billing_platform.events.publisher import EventPublisher
from billing_platform.events.repository import EventLedger
from billing_platform.events.stream import GRANT_EVENT_MEMORY, EventEmitter
from billing_platform.settings import Settings, get_settings

logger = logging.getLogger(__name__)

EXPIRY_BUCKETS = 16
GSI_LAG_MARGIN = timedelta(minutes=10)
FIRST_RUN_LOOKBACK = timedelta(days=2)
# A pending marker younger than this may still be in its first publisher's hands (stream function timeout
# is 60 s, its retries follow within minutes).
PENDING_GRACE = timedelta(minutes=15)
SWEEP_CLAIMANT = "sweep"


@dataclass
class SweepResult:
    expired: list[str] = field(default_factory=list)  # event ids published for expiries
    republished: list[str] = field(default_factory=list)  # pending events finished
    swept_until: datetime | None = None


class EventSweeper:
    def __init__(self, settings: Settings | None = None) -> None:
        settings = settings or get_settings()
        self._ledger = EventLedger(settings)
        self._emitter = EventEmitter(self._ledger, EventPublisher(settings), utc_now)

    def run(self) -> SweepResult:
        now = utc_now()
        result = SweepResult()
        cursor = self._ledger.sweep_cursor()
        since = (cursor - GSI_LAG_MARGIN) if cursor else now - FIRST_RUN_LOOKBACK
        for day in _days(since, now):
            for bucket in range(EXPIRY_BUCKETS):
                for key in self._ledger.expiring_grants(day, bucket, int(since.timestamp()), int(now.timestamp())):
                    event_id = self._expire(key["pk"], key["sk"], now)
                    if event_id:
                        result.expired.append(event_id)
        for event in self._ledger.pending(older_than=now - PENDING_GRACE):
            self._emitter.publish_pending(event)
            result.republished.append(event.event_id)
        self._ledger.save_sweep_cursor(now)
        result.swept_until = now
        logger.info(
            "event sweep done",
            extra={"expired": len(result.expired), "republished": len(result.republished), "since": since.isoformat()},
        )
        return result

    def _expire(self, pk: str, sk: str, now: datetime) -> str | None:
        item = self._ledger.grant(pk, sk)
        if item is None or item.get("state") != "active" or "valid_until" not in item:
            return None
        grant = grant_snapshot(item)
        if grant.valid_until is None or grant.valid_until > now or grant.remaining <= Decimal(0):
            return None  # not expired yet, or used up (its depletion event said so)
        event = grant.event(resources.GRANT_EXPIRED, grant.valid_until, grant.valid_until + GRANT_EVENT_MEMORY)
        published = self._emitter.emit(event, claimed_by=SWEEP_CLAIMANT)
        return published.event_id if published else None


def _days(since: datetime, until: datetime) -> list[str]:
    """UTC dates (YYYY-MM-DD) from `since` to `until`, both included."""
    day, last = since.astimezone(UTC).date(), until.astimezone(UTC).date()
    days = []
    while day <= last:
        days.append(day.isoformat())
        day += timedelta(days=1)
    return days
