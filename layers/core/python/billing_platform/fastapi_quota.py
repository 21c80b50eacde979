"""A FastAPI dependency that takes quota for the request before the endpoint runs, counted at the entity
the request resolves to (e.g. the authenticated user): every limited level from it up to the tenant's quota,
or nowhere. FastAPI is imported when a dependency is built, never by Lambda code.

    take_tokens = quota_dependency("tokens", 10, tenant=current_tenant_id, entity=current_user_id)

    @app.post("/generate")
    async def generate(check: EntitlementCheck = Depends(take_tokens)) -> dict[str, str]: ...

A refusal is raised before the endpoint runs: 402 for a period quota, 429 with Retry-After for a window.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from billing_platform.enforcer import EntitlementEnforcer, QuantityLike, check_entitlement_or_raise, default_enforcer
from billing_platform.entitlements.models import EntitlementCheck


async def _no_entity() -> None:
    return None


def quota_dependency(
    resource_type: str,
    quantity: QuantityLike = 1,
    *,
    tenant: Callable[..., Any],
    entity: Callable[..., Any] | None = None,
    enforcer: EntitlementEnforcer | None = None,
) -> Callable[..., Awaitable[EntitlementCheck]]:
    """A dependency taking `quantity` of `resource_type` for the tenant and entity that the `tenant` and
    `entity` dependencies resolve from the request (FastAPI resolves them as sub-dependencies, so they may
    themselves depend on the request, a header, the authenticated user). Answers the granted check."""
    from fastapi import Depends

    async def take(
        tenant_id: Any = Depends(tenant),
        entity_id: Any = Depends(entity or _no_entity),
    ) -> EntitlementCheck:
        active = enforcer or default_enforcer()
        answer = await active.check_and_record(
            tenant_id, resource_type, quantity, entity=str(entity_id) if entity_id is not None else None
        )
        return check_entitlement_or_raise(answer)

    return take
