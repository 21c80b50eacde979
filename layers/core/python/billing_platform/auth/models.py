"""The API shapes of tenant API keys and audit entries (documented in the OpenAPI schema and checked
against every response by Powertools' response validation). None of them can hold key material except
`CreatedApiKeyOut`, the one response that carries the new key."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class ApiKeyOut(BaseModel):
    id: str = Field(description="Key id (`key_<16 hex>`), also visible inside the key itself")
    tenant_id: str
    name: str
    description: str | None = None
    prefix: str = Field(description="The key's first characters, to recognise it; not enough to use it")
    status: Literal["active", "revoked", "expired"]
    created_at: datetime
    last_used_at: datetime | None = Field(default=None, description="Refreshed at most once a minute")
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


class CreatedApiKeyOut(ApiKeyOut):
    secret: str = Field(description="The API key. Shown once: only its SHA-256 is stored")


class ApiKeyPageOut(BaseModel):
    items: list[ApiKeyOut]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page")


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
    next_cursor: str | None = None
