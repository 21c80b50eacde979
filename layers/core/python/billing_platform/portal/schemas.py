"""HTTP shapes of the portal token routes (documented in the OpenAPI schema, checked on every response)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from billing_platform.portal.models import (
    ENTITY_ID_PATTERN,
    MAX_ALLOWED_ORIGINS,
    MAX_TTL,
    ORIGIN_PATTERN,
    PortalToken,
)

Origin = Annotated[str, Field(max_length=260, pattern=ORIGIN_PATTERN)]


class MintPortalTokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    ttl_seconds: int = Field(ge=60, le=int(MAX_TTL.total_seconds()), description="Lifetime: 60 s to 24 h (86400 s)")
    entity_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=ENTITY_ID_PATTERN,
        description="Scope the token to this one entity of the tenant (its routes only)",
    )
    label: str | None = Field(default=None, min_length=1, max_length=80, description="What the token is for")
    allowed_origins: list[Origin] = Field(
        default_factory=list,
        max_length=MAX_ALLOWED_ORIGINS,
        description="Origins (https://host[:port]; http only for localhost) whose pages may read this token's "
        "answers cross-origin (the embedded widget); empty: only the platform's own pages",
    )


class PortalTokenOut(BaseModel):
    id: str = Field(description="Token id (`ptk_<16 hex>`), also visible inside the token itself")
    tenant_id: str
    entity_id: str | None = None
    label: str | None = None
    status: Literal["active", "revoked", "expired"]
    created_at: datetime
    created_by: str = Field(description="The audit actor that minted it")
    expires_at: datetime
    revoked_at: datetime | None = None
    allowed_origins: list[str] = Field(description="Origins whose pages may read this token's answers (CORS)")

    @classmethod
    def of(cls, token: PortalToken, now: datetime) -> PortalTokenOut:
        return cls(
            id=token.token_id,
            tenant_id=token.tenant_id,
            entity_id=token.entity_id,
            label=token.label,
            status=token.status(now),
            created_at=token.created_at,
            created_by=token.created_by,
            expires_at=token.expires_at,
            revoked_at=token.revoked_at,
            allowed_origins=list(token.allowed_origins),
        )


class CreatedPortalTokenOut(PortalTokenOut):
    token: str = Field(description="The portal token (read-only). Shown once: only its SHA-256 is stored")


class PortalTokenPageOut(BaseModel):
    items: list[PortalTokenOut]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page")
