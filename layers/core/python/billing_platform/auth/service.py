"""The operator service for tenant API keys: create, list, revoke, and authenticate (the authorizer)."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime

from botocore.exceptions import ClientError

from billing_platform.audit.log import AuditEntry, AuditLog
from billing_platform.auth.caller import Actor
from billing_platform.auth.keys import generate_key, hash_key, key_id_of
from billing_platform.auth.models import ApiKey, ApiKeyPage, CreatedApiKey, KeyScope
from billing_platform.auth.repository import LAST_USED_RESOLUTION, ApiKeyRepository
from billing_platform.auth.usage_plans import UsagePlanKeys
from billing_platform.dynamodb import utc_now
from billing_platform.errors import NotFoundError, ValidationError
from billing_platform.settings import Settings, get_settings

logger = logging.getLogger(__name__)


class ApiKeyService:
    """Creates, lists, revokes and authenticates tenant API keys. Every mutation commits together with
    its audit entry; neither the key nor its hash ever reaches the audit log or a log line."""

    def __init__(
        self,
        settings: Settings | None = None,
        repository: ApiKeyRepository | None = None,
        usage_plan: UsagePlanKeys | None = None,
    ) -> None:
        self._settings = settings or get_settings()
        self._repository = repository or ApiKeyRepository(self._settings)
        self._audit = AuditLog(self._settings)
        self._usage_plan = usage_plan
        if usage_plan is None and self._settings.usage_plan_id:
            self._usage_plan = UsagePlanKeys(self._settings.usage_plan_id)

    @property
    def repository(self) -> ApiKeyRepository:
        return self._repository

    def create(
        self,
        tenant_id: str,
        *,
        name: str,
        actor: Actor,
        description: str | None = None,
        expires_at: datetime | None = None,
        scope: KeyScope = "use",
        now: datetime | None = None,
    ) -> CreatedApiKey:
        """A new active key for `tenant_id`; the full key is returned here once and never again."""
        moment = now or utc_now()
        if expires_at is not None:
            if expires_at.tzinfo is None:
                raise ValidationError("expires_at needs a timezone (use UTC, e.g. 2027-01-01T00:00:00Z)")
            if expires_at <= moment:
                raise ValidationError("expires_at must be in the future")
        key_id, secret = generate_key(live=self._settings.is_production)
        key = ApiKey(
            key_id=key_id,
            tenant_id=tenant_id,
            name=name,
            description=description,
            display_prefix=secret[: len("bk_test_") + 16],
            created_at=moment,
            expires_at=expires_at.astimezone(UTC) if expires_at else None,
            scope=scope,
        )
        entry = AuditEntry.by(actor, tenant_id, "api_key.created", key_id, after=key.to_dict(moment), at=moment)
        if self._usage_plan is not None:
            # Before the key exists: a key must never work without its tenant's throttling.
            self._usage_plan.ensure_tenant(tenant_id)
        self._repository.create(key, hash_key(secret), self._audit.put_item_request(entry))
        return CreatedApiKey(key=key, secret=secret)

    def list(self, tenant_id: str, *, limit: int = 50, cursor: str | None = None) -> ApiKeyPage:
        return self._repository.list_for_tenant(tenant_id, limit=limit, cursor=cursor)

    def revoke(self, tenant_id: str, key_id: str, *, actor: Actor, now: datetime | None = None) -> ApiKey:
        """Revoke a key of `tenant_id` (404 for an unknown key or another tenant's). Revoking twice is a
        no-op that returns the key as it is and writes no second audit entry."""
        moment = now or utc_now()
        found = self._repository.hash_for_key_id(key_id)
        if found is None or found[0] != tenant_id:
            raise NotFoundError("no such API key for this tenant", details={"key_id": key_id})
        key_hash = found[1]
        key = self._repository.get_by_hash(key_hash)
        if key is None:
            raise NotFoundError("no such API key for this tenant", details={"key_id": key_id})
        if key.revoked_at is not None:
            return key
        revoked = replace(key, revoked_at=moment)
        entry = AuditEntry.by(
            actor,
            tenant_id,
            "api_key.revoked",
            key_id,
            before=key.to_dict(moment),
            after=revoked.to_dict(moment),
            at=moment,
        )
        if not self._repository.revoke(key_hash, tenant_id, moment, self._audit.put_item_request(entry)):
            # Revoked concurrently by someone else: report the stored state.
            return self._repository.get_by_hash(key_hash) or revoked
        return revoked

    def authenticate(self, presented: str, *, now: datetime | None = None) -> ApiKey | None:
        """The active key `presented` stands for, or None (malformed, unknown, revoked, expired).
        Malformed strings cost no read. Refreshes last_used_at at most once a minute."""
        if key_id_of(presented) is None:
            return None
        moment = now or utc_now()
        key_hash = hash_key(presented)
        key = self._repository.get_by_hash(key_hash)
        if key is None or not key.is_usable(moment):
            return None
        if key.last_used_at is None or key.last_used_at < moment - LAST_USED_RESOLUTION:
            try:
                self._repository.touch_last_used(key_hash, moment)
            except ClientError as exc:
                # Bookkeeping must never turn a valid key away.
                logger.warning(
                    "last_used_at not updated",
                    extra={"key_id": key.key_id, "error": exc.response.get("Error", {}).get("Code")},
                )
        return key
