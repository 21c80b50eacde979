"""A page of the tenant directory, each tenant with its plan and status read as the entitlements read them:
the caller passes `EntitlementService.plan_for` (the same lookup the tenant's entitlements answer uses;
passed in, so this package does not import the entitlements package that its repository is written from)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from billing_platform.errors import NotFoundError
from billing_platform.settings import Settings, get_settings
from billing_platform.tenants.repository import TenantDirectoryRepository
from billing_platform.tenants.schemas import TenantPageOut, TenantSummaryOut

if TYPE_CHECKING:
    from billing_platform.entitlements.models import TenantPlan

PlanLookup = Callable[..., "TenantPlan"]


class TenantDirectory:
    def __init__(
        self,
        plan_for: PlanLookup,
        settings: Settings | None = None,
        repository: TenantDirectoryRepository | None = None,
    ) -> None:
        self._repository = repository or TenantDirectoryRepository(settings or get_settings())
        self._plan_for = plan_for

    def page(self, *, limit: int = 25, cursor: str | None = None) -> TenantPageOut:
        tenant_ids, next_cursor = self._repository.page(limit=limit, cursor=cursor)
        items: list[TenantSummaryOut] = []
        for tenant_id in tenant_ids:
            try:
                plan = self._plan_for(tenant_id, fresh=True)
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


@dataclass(frozen=True)
class DirectoryBackfill:
    """What `backfill_directory` found: tenants with a customer or an API key, those already listed, and
    those it added (none on a second run)."""

    onboarded: int
    already_listed: int
    added: list[str]
    items_scanned: int

    def to_dict(self) -> dict[str, object]:
        return {
            "onboarded": self.onboarded,
            "already_listed": self.already_listed,
            "added": self.added,
            "items_scanned": self.items_scanned,
        }


def backfill_directory(repository: TenantDirectoryRepository) -> DirectoryBackfill:
    """List in the directory every tenant that has a customer binding or an API key but is missing from it
    (onboarded before the directory existed). Idempotent: a put of a listed tenant changes nothing, and a
    second run adds none."""
    onboarded, scanned = repository.onboarded()
    listed = repository.listed()
    missing = sorted(onboarded - listed)
    repository.list_tenants(missing)
    return DirectoryBackfill(len(onboarded), len(onboarded & listed), missing, scanned)
