"""Webhook endpoint and delivery models (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

ALL_EVENTS = "*"


@dataclass(frozen=True)
class WebhookEndpoint:
    """A tenant's endpoint. `secret` is only ever returned by the create call."""

    endpoint_id: str
    tenant_id: str
    url: str
    description: str | None
    enabled_events: tuple[str, ...]
    created_at: datetime
    created_by: str

    def wants(self, detail_type: str) -> bool:
        return ALL_EVENTS in self.enabled_events or detail_type in self.enabled_events

    def to_dict(self) -> dict[str, Any]:
        """The API and audit shape: never the secret."""
        return {
            "id": self.endpoint_id,
            "tenant_id": self.tenant_id,
            "url": self.url,
            "description": self.description,
            "enabled_events": list(self.enabled_events),
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class CreatedEndpoint:
    endpoint: WebhookEndpoint
    secret: str
