"""HTTP shapes of the tenant's event reads (`GET /v1/tenants/{tenant_id}/events`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

# The most events one read answers (the route's `limit` is capped to it).
MAX_RECENT_EVENTS = 100


class TenantEventOut(BaseModel):
    event_id: str
    type: str = Field(description="billing.quota.threshold_crossed, billing.grant.depleted or billing.grant.expired")
    status: Literal["published", "pending"] = Field(description="pending: claimed, its publish not yet confirmed")
    occurred_at: str = Field(description="ISO 8601 UTC, as in the event's detail")
    resource_type: str
    threshold_percent: str | None = Field(default=None, description="Threshold crossings: the percent reached")
    used: str | None = Field(default=None, description="Decimal string, as in the event's detail")
    limit: str | None = Field(default=None, description="Decimal string, as in the event's detail")
    grant_id: str | None = Field(default=None, description="Grant events: the grant")


class TenantEventsOut(BaseModel):
    tenant_id: str
    items: list[TenantEventOut] = Field(description="Newest first")
