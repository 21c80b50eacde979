"""The HTTP API's request and response bodies for tenant API keys (operator routes), checked against every
response by Powertools' response validation. None of them can hold key material except
`CreatedApiKeyOut`, the one response that carries the new key."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from billing_platform.auth.models import KeyScope
from billing_platform.instants import UtcInstant


class CreateApiKey(BaseModel):
    """`POST /v1/tenants/{tenant_id}/api-keys`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=500)
    expires_at: UtcInstant | None = Field(default=None, description="ISO 8601 with a timezone; absent: never")
    scope: KeyScope = Field(
        default="use",
        description="`use`: consume, check and reserve. `admin`: also manage the tenant's entities, their limits, "
        "key bindings and webhook endpoints",
    )


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
    scope: KeyScope = Field(
        default="use",
        description="`use`: consume, check and reserve for its tenant. `admin`: also manage the tenant's entities, "
        "their limits, key bindings and webhook endpoints",
    )
    entity_id: str | None = Field(
        default=None, description="The entity this key's consumes count at when they name none (its binding)"
    )


class CreatedApiKeyOut(ApiKeyOut):
    secret: str = Field(description="The API key. Shown once: only its SHA-256 is stored")


class ApiKeyPageOut(BaseModel):
    items: list[ApiKeyOut]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page")
