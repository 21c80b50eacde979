"""A portal token's metadata (`PortalToken`, never the token itself), the mint request, and the token
material: generation, the id inside it, and the hash that is all the platform stores.

A token looks like `bpt_3f9a0c1d2e4b5a69_<43 url-safe chars>`: the prefix makes a leaked token greppable
(and the audit log's scrubber recognises it), the 16 hex characters are the token id, the tail is
`secrets.token_urlsafe(32)`. SHA-256 without salt is the right hash for 256 random bits (see
`billing_platform.auth.keys`): guessing is infeasible at any hash speed, and the authorizer stays one read.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

TOKEN_ID_PREFIX = "ptk_"
TOKEN_PREFIX = "bpt_"
TOKEN_ID_PATTERN = r"^ptk_[0-9a-f]{16}$"
_TOKEN_PATTERN = re.compile(r"^bpt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
# A portal page is opened for a session, not kept: a day at most, an hour unless asked otherwise.
MAX_TTL = timedelta(hours=24)
DEFAULT_TTL = timedelta(hours=1)
ENTITY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"
# A web origin a token's answers may be read from by a page (CORS): https, or http on the local machine only.
ORIGIN_PATTERN = r"^(https://[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?|http://(localhost|127\.0\.0\.1))(:[0-9]{1,5})?$"
MAX_ALLOWED_ORIGINS = 5
# The authorizer context key carrying them to the functions (billing_platform.api.cors).
ALLOWED_ORIGINS_CONTEXT = "allowed_origins"

PortalTokenStatus = Literal["active", "revoked", "expired"]


def hash_token(presented: str) -> str:
    """SHA-256 hex digest of the full token: the only form in which a token is stored."""
    return hashlib.sha256(presented.encode("utf-8")).hexdigest()


def token_id_of(presented: str) -> str | None:
    """The token id of a well-formed portal token (`ptk_<16 hex>`), or None."""
    match = _TOKEN_PATTERN.fullmatch(presented)
    return f"{TOKEN_ID_PREFIX}{match.group(1)}" if match else None


def is_portal_token(presented: str) -> bool:
    """True when `presented` has the shape of a portal token (no read needed to route it)."""
    return presented.startswith(TOKEN_PREFIX)


def generate_token() -> tuple[str, str]:
    """A new (token id, full token). The full token is shown once and never stored."""
    id_part = secrets.token_hex(8)
    return f"{TOKEN_ID_PREFIX}{id_part}", f"{TOKEN_PREFIX}{id_part}_{secrets.token_urlsafe(32)}"


@dataclass(frozen=True)
class MintPortalToken:
    """What a mint asks for: the tenant (and optionally one entity of it) and how long the token lives."""

    tenant_id: str
    ttl: timedelta = DEFAULT_TTL
    entity_id: str | None = None
    label: str | None = None
    allowed_origins: tuple[str, ...] = ()


@dataclass(frozen=True)
class PortalToken:
    """A portal token's metadata. Holds no token material: neither the token nor its hash."""

    token_id: str
    tenant_id: str
    created_at: datetime
    expires_at: datetime
    created_by: str
    entity_id: str | None = None
    label: str | None = None
    revoked_at: datetime | None = None
    # Pages on these origins may read the token's answers (CORS); none: only the platform's own pages.
    allowed_origins: tuple[str, ...] = ()

    def status(self, now: datetime) -> PortalTokenStatus:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        return "active"

    def is_usable(self, now: datetime) -> bool:
        return self.status(now) == "active"

    def audit_view(self, now: datetime) -> dict[str, str | list[str] | None]:
        """The audit log's snapshot (no field named like a secret: the log drops `token*` fields)."""
        return {
            "id": self.token_id,
            "entity_id": self.entity_id,
            "label": self.label,
            "allowed_origins": list(self.allowed_origins),
            "status": self.status(now),
            "expires_at": self.expires_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


@dataclass(frozen=True)
class CreatedPortalToken:
    """A mint's result: the metadata and the full token, which exists only in this response."""

    token: PortalToken
    secret: str = field(repr=False)


@dataclass(frozen=True)
class PortalTokenPage:
    tokens: list[PortalToken]
    next_cursor: str | None
