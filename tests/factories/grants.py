"""Grants written straight through the real GrantRepository (operator source), for tests that need a
tenant with live grants of a resource."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from billing_platform.audit.log import AuditEntry
from billing_platform.grants.models import Grant, GrantSource, GrantState
from billing_platform.grants.repository import GrantRepository

_ids = itertools.count(0x5190)


def add_grant(
    repo: GrantRepository,
    tenant: str,
    resource_type: str,
    amount: int,
    *,
    priority: int = 50,
    valid_until: datetime | None = None,
) -> str:
    """Create one active grant; returns its id."""
    grant_id = f"grt_{next(_ids):016x}"
    grant = Grant(
        tenant_id=tenant,
        resource_type=resource_type,
        grant_id=grant_id,
        amount=Decimal(amount),
        remaining=Decimal(amount),
        used=Decimal(0),
        priority=priority,
        valid_until=valid_until.replace(microsecond=0) if valid_until else None,
        state=GrantState.ACTIVE,
        source=GrantSource.OPERATOR,
        source_id=grant_id,
        created_at=datetime.now(UTC) - timedelta(minutes=5),
        created_by="operator:test",
    )
    audit = AuditEntry(tenant_id=tenant, actor="operator:test", action="grant.create", target=grant_id)
    assert repo.create([grant], audit)
    return grant_id


def grants_of(repo: GrantRepository, tenant: str, resource_type: str) -> dict[str, Grant]:
    return {g.grant_id: g for g in repo.list(tenant, resource_type)}
