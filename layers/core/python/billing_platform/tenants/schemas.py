"""HTTP shape of `GET /v1/tenants` (operator)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TenantSummaryOut(BaseModel):
    tenant_id: str
    plan_id: str = Field(description="As GET /v1/tenants/{tenant_id}/entitlements answers it")
    status: str = Field(description="As GET /v1/tenants/{tenant_id}/entitlements answers it")
    subscribed: bool
    period_end: str = Field(description="ISO 8601 UTC")


class TenantPageOut(BaseModel):
    items: list[TenantSummaryOut]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page")
