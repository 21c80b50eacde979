"""Tenant API keys as the platform holds them (`ApiKey`: metadata only, never key material)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

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
