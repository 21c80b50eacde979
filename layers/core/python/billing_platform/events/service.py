"""Reads of a tenant's events (the ledger's markers) for the tenant routes; publishing lives in
`stream.py` / `sweeper.py`."""

from __future__ import annotations

from billing_platform.events.repository import EventLedger
from billing_platform.events.schemas import MAX_RECENT_EVENTS, TenantEventOut, TenantEventsOut
from billing_platform.settings import Settings, get_settings


class EventService:
    """The events a tenant was sent (threshold crossings, grant depletions and expiries), newest first."""

    def __init__(self, settings: Settings | None = None, ledger: EventLedger | None = None) -> None:
        self._ledger = ledger or EventLedger(settings or get_settings())

    def recent(self, tenant_id: str, *, limit: int = 20) -> TenantEventsOut:
        pairs = self._ledger.recent(tenant_id, limit=min(limit, MAX_RECENT_EVENTS))
        return TenantEventsOut(
            tenant_id=tenant_id,
            items=[
                TenantEventOut(
                    event_id=event.event_id,
                    type=event.detail_type,
                    status="published" if status == "published" else "pending",
                    occurred_at=str(event.detail.get("occurred_at") or ""),
                    resource_type=str(event.detail.get("resource_type") or ""),
                    threshold_percent=_text(event.detail.get("threshold_percent")),
                    used=_text(event.detail.get("used")),
                    limit=_text(event.detail.get("limit")),
                    grant_id=_text(event.detail.get("grant_id")),
                )
                for status, event in pairs
            ],
        )


def _text(value: object) -> str | None:
    return None if value is None else str(value)
