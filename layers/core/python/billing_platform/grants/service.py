"""Grant use cases for operators: create, list, void (each mutation audited in its own transaction).

Drawing grants is part of consuming (`billing_platform.entitlements`); buying them through Stripe is
`billing_platform.grants.topups`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC
from decimal import Decimal

from billing_platform.audit.log import AuditEntry
from billing_platform.auth.caller import Actor
from billing_platform.dynamodb import utc_now
from billing_platform.errors import ConflictError, NotFoundError, UnprocessableError
from billing_platform.grants.models import Grant, GrantSource, GrantState, new_grant_id
from billing_platform.grants.repository import GrantRepository
from billing_platform.grants.schemas import CreateGrantRequest
from billing_platform.settings import Settings, get_settings

logger = logging.getLogger(__name__)

VOID_ATTEMPTS = 8


class GrantService:
    """Operator grants. Promises: a created grant is audited in the same transaction; a void takes exactly
    the remainder it audits (re-read if a draw raced it); bad input (unknown tenant or resource, an
    expiry not in the future) changes nothing."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        tenant_known: Callable[[str], bool],
        repository: GrantRepository | None = None,
    ) -> None:
        """`tenant_known(tenant_id)`: whether the platform knows the tenant (the entitlements' own
        `EntitlementService.tenant_known`: grants never read the entitlement items themselves)."""
        self._settings = settings or get_settings()
        self._repo = repository or GrantRepository(self._settings)
        self._tenant_known = tenant_known

    def create(self, tenant_id: str, request: CreateGrantRequest, *, actor: Actor) -> Grant:
        """Grant `request.amount` of a resource to a known tenant on top of its plan."""
        self._settings.catalog.require_resource_type(request.resource_type)
        now = utc_now()
        if request.expires_at is not None and request.expires_at.astimezone(UTC) <= now:
            raise UnprocessableError("expires_at must be in the future", code="invalid_expiry")
        if not self._tenant_known(tenant_id):
            raise NotFoundError(f"unknown tenant {tenant_id!r}", code="unknown_tenant")
        grant_id = new_grant_id()
        grant = Grant(
            tenant_id=tenant_id,
            resource_type=request.resource_type,
            grant_id=grant_id,
            amount=request.amount,
            remaining=request.amount,
            used=Decimal(0),
            priority=request.priority,
            # Whole seconds: the item keeps epoch seconds, and the answer must say what is stored.
            valid_until=request.expires_at.astimezone(UTC).replace(microsecond=0) if request.expires_at else None,
            state=GrantState.ACTIVE,
            source=GrantSource.OPERATOR,
            source_id=grant_id,
            created_at=now,
            created_by=actor.principal_id,
            reason=request.reason,
        )
        audit = AuditEntry.by(actor, tenant_id, "grant.create", grant_id, after=grant.to_dict(now))
        if not self._repo.create([grant], audit):
            raise ConflictError(f"grant {grant_id} exists", code="grant_exists")  # a random id collided
        logger.info(
            "grant created",
            extra={"tenant_id": tenant_id, "grant_id": grant_id, "resource_type": grant.resource_type},
        )
        return grant

    def list(self, tenant_id: str, resource_type: str | None = None) -> list[Grant]:
        """The tenant's grants (every state), in draw order per resource."""
        if resource_type is not None:
            self._settings.catalog.require_resource_type(resource_type)
        return self._repo.list(tenant_id, resource_type)

    def void(self, tenant_id: str, grant_id: str, *, actor: Actor) -> Grant:
        """Void what is left of a grant (its drawn part stays drawn). Voiding a voided grant is a 409."""
        for _attempt in range(VOID_ATTEMPTS):
            grant = self._repo.find(tenant_id, grant_id)
            if grant is None:
                raise NotFoundError(f"no grant {grant_id!r} for tenant {tenant_id!r}", code="unknown_grant")
            if grant.state is GrantState.VOIDED:
                raise ConflictError(f"grant {grant_id} is already voided", code="grant_voided")
            now = utc_now()
            voided = replace(
                grant,
                state=GrantState.VOIDED,
                remaining=Decimal(0),
                voided_amount=grant.remaining,
                voided_at=now,
                voided_by=actor.principal_id,
            )
            audit = AuditEntry.by(
                actor, tenant_id, "grant.void", grant_id, before=grant.to_dict(now), after=voided.to_dict(now)
            )
            if self._repo.void(grant, actor.principal_id, now, audit):
                logger.info(
                    "grant voided",
                    extra={"tenant_id": tenant_id, "grant_id": grant_id, "voided": str(grant.remaining)},
                )
                return voided
        raise ConflictError(f"grant {grant_id} is being drawn too fast to void; retry", code="grant_busy")
