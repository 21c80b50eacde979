"""Tenant API keys as the platform holds them (`ApiKey`: metadata only, never key material), and the API
shapes of keys and audit entries (documented in the OpenAPI schema and checked
against every response by Powertools' response validation). None of them can hold key material except
`CreatedApiKeyOut`, the one response that carries the new key."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from billing_platform.dynamodb import utc_now

KeyStatus = Literal["active", "revoked", "expired"]
# `use`: consume, check, reserve and read its own tenant's quotas. `admin`: also manage its own tenant's
# entities, their limits, key bindings and webhook endpoints (billing_platform.auth.caller.require_scope).
KeyScope = Literal["use", "admin"]
KEY_SCOPES: tuple[KeyScope, ...] = ("use", "admin")


@dataclass(frozen=True)
class ApiKey:
    """A tenant API key's metadata. Holds no key material: neither the key nor its hash."""

    key_id: str
    tenant_id: str
    name: str
    created_at: datetime
    description: str | None = None
    display_prefix: str = ""
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    scope: KeyScope = "use"
    # The entity this key's consumes count at when they name none (billing_platform.entities).
    entity_id: str | None = None

    def status(self, now: datetime | None = None) -> KeyStatus:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or utc_now()):
            return "expired"
        return "active"

    def is_usable(self, now: datetime | None = None) -> bool:
        return self.status(now) == "active"

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        """The API and audit shape: metadata only."""
        return {
            "id": self.key_id,
            "tenant_id": self.tenant_id,
            "name": self.name,
            "description": self.description,
            "prefix": self.display_prefix,
            "status": self.status(now),
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "scope": self.scope,
            "entity_id": self.entity_id,
        }


@dataclass(frozen=True)
class CreatedApiKey:
    """The result of a creation: the metadata and the full key, which exists only in this response."""

    key: ApiKey
    secret: str = field(repr=False)


@dataclass(frozen=True)
class ApiKeyPage:
    keys: list[ApiKey]
    next_cursor: str | None


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
