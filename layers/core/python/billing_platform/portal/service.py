"""Portal tokens: mint, list, revoke (each audited) and authenticate (the authorizer). Who may mint is the
callers' rule: `billing_platform.auth.caller.require_portal_minter`."""

from __future__ import annotations

import hmac
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from billing_platform.audit.log import AuditEntry, AuditLog
from billing_platform.dynamodb import utc_now
from billing_platform.errors import NotFoundError, ValidationError
from billing_platform.portal.models import (
    MAX_TTL,
    CreatedPortalToken,
    MintPortalToken,
    PortalToken,
    PortalTokenPage,
    generate_token,
    hash_token,
    token_id_of,
)
from billing_platform.portal.repository import PortalTokenRepository
from billing_platform.settings import Settings, get_settings

if TYPE_CHECKING:
    from billing_platform.auth.caller import Actor

# Shorter than this is not a session anyone could use.
MIN_TTL = timedelta(minutes=1)


class PortalTokenService:
    """Mints, lists, revokes and authenticates portal tokens. A mint or revocation commits together with
    its audit entry; neither the token nor its hash ever reaches the audit log or a log line."""

    def __init__(self, settings: Settings | None = None, repository: PortalTokenRepository | None = None) -> None:
        self._settings = settings or get_settings()
        self._repository = repository or PortalTokenRepository(self._settings)
        self._audit = AuditLog(self._settings)

    def mint(self, request: MintPortalToken, *, actor: Actor, now: datetime | None = None) -> CreatedPortalToken:
        """A new token for `request.tenant_id`, valid for `request.ttl` (1 minute to 24 hours); the full
        token is returned here once and never again."""
        if not MIN_TTL <= request.ttl <= MAX_TTL:
            raise ValidationError(
                "a portal token lives between 60 and 86400 seconds",
                details={"ttl_seconds": request.ttl.total_seconds()},
            )
        moment = (now or utc_now()).astimezone(UTC)
        token_id, secret = generate_token()
        token = PortalToken(
            token_id=token_id,
            tenant_id=request.tenant_id,
            created_at=moment,
            expires_at=moment + request.ttl,
            created_by=actor.principal_id,
            entity_id=request.entity_id,
            label=request.label,
            allowed_origins=request.allowed_origins,
        )
        entry = AuditEntry.by(
            actor, request.tenant_id, "portal_token.created", token_id, after=token.audit_view(moment), at=moment
        )
        self._repository.create(token, hash_token(secret), self._audit.put_item_request(entry))
        return CreatedPortalToken(token=token, secret=secret)

    def list(self, tenant_id: str, *, limit: int = 50, cursor: str | None = None) -> PortalTokenPage:
        return self._repository.list_for_tenant(tenant_id, limit=limit, cursor=cursor)

    def revoke(self, tenant_id: str, token_id: str, *, actor: Actor, now: datetime | None = None) -> PortalToken:
        """Revoke a token of `tenant_id` (404 for an unknown token or another tenant's). Revoking twice
        returns the token as it is and writes no second audit entry."""
        moment = now or utc_now()
        found = self._repository.get(token_id)
        if found is None or found[0].tenant_id != tenant_id:
            raise NotFoundError("no such portal token for this tenant", details={"token_id": token_id})
        token = found[0]
        if token.revoked_at is not None:
            return token
        revoked = replace(token, revoked_at=moment)
        entry = AuditEntry.by(
            actor,
            tenant_id,
            "portal_token.revoked",
            token_id,
            before=token.audit_view(moment),
            after=revoked.audit_view(moment),
            at=moment,
        )
        if not self._repository.revoke(token, moment, self._audit.put_item_request(entry)):
            again = self._repository.get(token_id)
            return again[0] if again else revoked
        return revoked

    def authenticate(self, presented: str, *, now: datetime | None = None) -> PortalToken | None:
        """The live token `presented` stands for, or None (malformed, unknown, revoked, expired). A
        malformed string costs no read; the stored hash is compared in constant time."""
        token_id = token_id_of(presented)
        if token_id is None:
            return None
        found = self._repository.get(token_id)
        if found is None:
            return None
        token, stored_hash = found
        if not hmac.compare_digest(hash_token(presented), stored_hash):
            return None
        return token if token.is_usable(now or utc_now()) else None
