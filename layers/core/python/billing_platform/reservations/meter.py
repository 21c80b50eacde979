"""The usage record a settle emits, sent to the usage queue (the same queue, packing and record-id rules
as `UsageTracker`), synchronously: the reservation leaves the sweep's index only once SQS took it."""

from __future__ import annotations

from typing import Protocol

from billing_platform.catalog import Catalog
from billing_platform.errors import MeterUnavailable
from billing_platform.reservations.models import Reservation, usage_record_id
from billing_platform.settings import Settings
from billing_platform.usage.models import build_record
from billing_platform.usage.queue import SqsUsageQueue, UsageSender, send_records


class Meter(Protocol):
    def send(self, reservation: Reservation) -> None: ...


class QueueMeter:
    """Sends a settled reservation's charged amount as one usage record with a record id derived from the
    reservation (`<reservation id>.settle`) and the settle's own time, so every re-send is the same record
    and the usage pipeline counts it once."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        *,
        sender: UsageSender | None = None,
    ) -> None:
        self._sender = sender
        self._queue_url = settings.usage_queue_url
        self._catalog = catalog

    @property
    def sender(self) -> UsageSender:
        if self._sender is None:
            if self._queue_url is None:
                raise MeterUnavailable("no usage queue configured (USAGE_QUEUE_URL)")
            self._sender = SqsUsageQueue(self._queue_url)
        return self._sender

    def send(self, reservation: Reservation) -> None:
        if reservation.charged <= 0 or reservation.resolved_at is None:
            return
        record = build_record(
            reservation.tenant_id,
            reservation.resource_type,
            reservation.charged,
            timestamp=reservation.resolved_at,
            record_id=usage_record_id(reservation.reservation_id),
            metadata={"reservation_id": reservation.reservation_id},
            entity_id=reservation.entity_id,  # the usage read model groups by it
        )
        self._catalog.require_resource_type(record.resource_type)
        report = send_records(self.sender, [record.wire_json()], 1)
        if report.unsent:
            raise MeterUnavailable("the usage queue refused the settle's usage record")
