"""Use case: a batch of billing-table stream records -> quota threshold and grant depletion events, each
published once. Records are handled in order; the first one that cannot be finished (EventBridge or
DynamoDB refused) is reported as the batch item failure, so Lambda resumes there with any batch boundaries
and nothing before it is redone; what it already claimed is re-published from its marker (same event)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from billing_platform import resources
from billing_platform.catalog.models import DEFAULT_THRESHOLDS
from billing_platform.dynamodb import utc_now
from billing_platform.events.detection import (
    CounterChange,
    counter_change,
    crossed,
    grant_depletion,
    plain_image,
    reached,
    spend_crossings,
)
from billing_platform.events.models import BillingEvent, ThresholdCrossing
from billing_platform.events.publisher import EventPublisher
from billing_platform.events.repository import ClaimState, EventLedger, remember_threshold
from billing_platform.settings import Settings, get_settings

logger = logging.getLogger(__name__)

GRANT_EVENT_MEMORY = timedelta(days=400)
# Markers this container saw published: a sharded quota's shards keep reporting a level already
# reached, and each repeat would otherwise cost one refused conditional put. Only a saving, never relied on.
_DONE_CACHE_SIZE = 20_000


@dataclass
class StreamResult:
    published: list[str] = field(default_factory=list)  # event ids published by this call
    already: int = 0  # events found published (or owned by another record) in the ledger
    failed_from: str | None = None  # sequence number to resume from

    def to_lambda_response(self) -> dict[str, Any]:
        failures = [{"itemIdentifier": self.failed_from}] if self.failed_from else []
        return {"batchItemFailures": failures}


class EventEmitter:
    """Claim -> publish -> mark published, for one event. Shared by the stream and the sweeper."""

    def __init__(self, ledger: EventLedger, publisher: EventPublisher, clock: Callable[[], datetime]) -> None:
        self._ledger = ledger
        self._publisher = publisher
        self._clock = clock
        self._done: set[tuple[str, str]] = set()

    def emit(self, event: BillingEvent, claimed_by: str) -> BillingEvent | None:
        """The event published by this call, or None when the ledger already has it (published, or owned
        by another record that will finish it)."""
        key = (event.tenant_id, event.marker_sk)
        if key in self._done:
            return None
        claim = self._ledger.claim(event, claimed_by, self._clock())
        if claim.state is ClaimState.PUBLISHED:
            self._remember(key)
            return None
        if claim.state is ClaimState.PENDING_OTHER:
            return None
        self.publish_pending(claim.event)
        self._remember(key)
        return claim.event

    def publish_pending(self, event: BillingEvent) -> None:
        """Publish a claimed event as stored and mark it published (a crash in between re-publishes the
        same event id)."""
        self._publisher.publish([event])
        self._ledger.mark_published(event, self._clock())
        logger.info(
            "billing event published",
            extra={"event_id": event.event_id, "detail_type": event.detail_type, "tenant_id": event.tenant_id},
        )

    def _remember(self, key: tuple[str, str]) -> None:
        if len(self._done) >= _DONE_CACHE_SIZE:
            self._done.clear()
        self._done.add(key)


class QuotaEventProcessor:
    """Turns stream records into events. Thresholds come from the plan catalog (the counter's plan)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        ledger: EventLedger | None = None,
        publisher: EventPublisher | None = None,
    ) -> None:
        self._settings = settings or get_settings()
        self._ledger = ledger or EventLedger(self._settings)
        self._publisher = publisher or EventPublisher(self._settings)
        self.emitter = EventEmitter(self._ledger, self._publisher, utc_now)

    def process(self, records: list[dict[str, Any]]) -> StreamResult:
        result = StreamResult()
        totals: dict[tuple[str, str, int, Decimal, int], Decimal] = {}
        for record in records:
            change = record.get("dynamodb", {})
            sequence = str(change.get("SequenceNumber", ""))
            try:
                for event in self._events(record, totals):
                    if self.emitter.emit(event, claimed_by=sequence) is None:
                        result.already += 1
                    else:
                        result.published.append(event.event_id)
            except Exception:
                logger.exception("stream record not finished; Lambda resumes here", extra={"sequence": sequence})
                result.failed_from = sequence
                return result
        return result

    def _events(
        self, record: dict[str, Any], totals: dict[tuple[str, str, int, Decimal, int], Decimal]
    ) -> list[BillingEvent]:
        change = record.get("dynamodb", {})
        keys = plain_image(change.get("Keys")) or {}
        old, new = plain_image(change.get("OldImage")), plain_image(change.get("NewImage"))
        at = datetime.fromtimestamp(float(change.get("ApproximateCreationDateTime") or 0), UTC)
        counter = counter_change(keys, old, new)
        if counter is not None:
            return [c.to_event(remember_threshold(c.period_end)) for c in self._crossings(counter, at, totals)]
        spent = spend_crossings(keys, old, new, at)
        if spent:
            return [c.to_event(remember_threshold(c.period_end)) for c in spent]
        grant = grant_depletion(keys, old, new)
        if grant is not None:
            return [grant.event(resources.GRANT_DEPLETED, at, at + GRANT_EVENT_MEMORY)]
        return []

    def _thresholds(self, plan_id: str) -> tuple[Decimal, ...]:
        plan = self._settings.catalog.plans.get(plan_id)
        return plan.thresholds if plan is not None else DEFAULT_THRESHOLDS

    def _crossings(
        self, c: CounterChange, at: datetime, totals: dict[tuple[str, str, int, Decimal, int], Decimal]
    ) -> list[ThresholdCrossing]:
        percentages = self._thresholds(c.plan_id)
        if not c.sharded:
            hits, used = crossed(percentages, c.limit, c.old_used, c.new_used), c.new_used
        else:
            # One read of all shards per quota and batch (off the hot path); the level test, deduped by
            # the ledger, cannot miss a crossing split between shards read at different moments.
            if c.quota_key not in totals:
                totals[c.quota_key] = self._ledger.quota_used(c.tenant_id, c.resource_type, c.shards, c.period_start)
            used = max(totals[c.quota_key], c.new_used)
            hits = reached(percentages, c.limit, used)
        return [
            ThresholdCrossing(
                tenant_id=c.tenant_id,
                resource_type=c.resource_type,
                percent=p,
                used=used,
                limit=c.limit,
                period_start=c.period_start,
                period_end=c.period_end,
                plan_id=c.plan_id,
                policy=c.policy,
                occurred_at=at,
            )
            for p in hits
        ]
