"""The HTTP API's response bodies for the audit log (`GET /v1/tenants/{tenant_id}/audit`, operator)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class AuditEntryOut(BaseModel):
    id: str
    tenant_id: str
    at: datetime
    actor: str = Field(description="`operator:<principal>` or `tenant:<tenant>:key:<key id>`")
    action: str
    target: str
    request_id: str | None = Field(default=None, description="API Gateway request id or Stripe event id")
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


class AuditPageOut(BaseModel):
    items: list[AuditEntryOut]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page")
