"""A page of the tenant directory, each tenant with its plan and status read as the entitlements read them
(the same `plan_for`, so the console says what the tenant's own entitlements answer says)."""

from __future__ import annotations

from billing_platform.entitlements.service import EntitlementService
from billing_platform.errors import NotFoundError
from billing_platform.settings import Settings, get_settings
from billing_platform.tenants.repository import TenantDirectoryRepository
from billing_platform.tenants.schemas import TenantPageOut, TenantSummaryOut


class TenantDirectory:
    def __init__(
        self,
        settings: Settings | None = None,
        repository: TenantDirectoryRepository | None = None,
        entitlements: EntitlementService | None = None,
    ) -> None:
        settings = settings or get_settings()
        self._repository = repository or TenantDirectoryRepository(settings)
        self._entitlements = entitlements or EntitlementService(settings)

    def page(self, *, limit: int = 25, cursor: str | None = None) -> TenantPageOut:
        tenant_ids, next_cursor = self._repository.page(limit=limit, cursor=cursor)
        items: list[TenantSummaryOut] = []
        for tenant_id in tenant_ids:
            try:
                plan = self._entitlements.plan_for(tenant_id, fresh=True)
            except NotFoundError:
                continue  # listed, but its key and customer are gone: nothing to show
            items.append(
                TenantSummaryOut(
                    tenant_id=tenant_id,
                    plan_id=plan.plan_id,
                    status=plan.status,
                    subscribed=plan.subscribed,
                    period_end=plan.period_end.isoformat(),
                )
            )
        return TenantPageOut(items=items, next_cursor=next_cursor)
