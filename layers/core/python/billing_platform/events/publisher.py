"""Puts billing events on the EventBridge bus (resources.EVENT_BUS). PutEvents has no idempotency of its
own: exactly-once comes from the ledger (billing_platform.events.repository), and a re-publish after a crash
carries the same `event_id` in its detail for consumers to dedupe on."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from billing_platform import clients, resources
from billing_platform.errors import PublishError
from billing_platform.events.models import BillingEvent
from billing_platform.settings import Settings


class EventPublisher:
    """One `PutEvents` per call, up to 10 events (EventBridge's limit per request)."""

    def __init__(self, settings: Settings, client: Any = None) -> None:
        self._bus = settings.event_bus_name
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or clients.events()

    def publish(self, events: list[BillingEvent]) -> None:
        """Publish all of `events` or raise PublishError naming the ones EventBridge refused."""
        for start in range(0, len(events), 10):
            chunk = events[start : start + 10]
            response = self.client.put_events(Entries=[self._entry(e) for e in chunk])
            if response.get("FailedEntryCount"):
                failed = [
                    f"{event.event_id}: {entry.get('ErrorCode')}"
                    for event, entry in zip(chunk, response.get("Entries", []), strict=False)
                    if entry.get("ErrorCode")
                ]
                raise PublishError(f"EventBridge refused {', '.join(failed) or 'events'}")

    def _entry(self, event: BillingEvent) -> dict[str, Any]:
        return {
            "Source": resources.EVENT_BUS.source,
            "DetailType": event.detail_type,
            "Detail": event.detail_json(),
            "EventBusName": self._bus,
            "Time": datetime.fromisoformat(str(event.detail["occurred_at"]).replace("Z", "+00:00")),
        }
