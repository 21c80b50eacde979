"""The library's faces for cost and preview: `CostReader` (async: ``await reader.cost(tenant)``) and its
blocking twin ``reader.sync`` (`SyncCostReader`), the library's one convention (see
`billing_platform.enforcer`)."""

from __future__ import annotations

from billing_platform.costs.models import InvoicePreview, TenantCost
from billing_platform.costs.service import CostService
from billing_platform.ids import TenantIdLike, tenant_id_str
from billing_platform.offload import run_blocking
from billing_platform.usage.queries import SyncUsageAggregator


class SyncCostReader:
    """The blocking face: this period's cost and invoice preview of a tenant."""

    def __init__(self, service: CostService | None = None) -> None:
        self._service = service

    @property
    def service(self) -> CostService:
        if self._service is None:
            self._service = CostService(usage=SyncUsageAggregator())
        return self._service

    def cost(self, tenant_id: TenantIdLike) -> TenantCost:
        """This period's usage rated so far, per priced resource and dimension value."""
        return self.service.cost(tenant_id_str(tenant_id))

    def invoice_preview(self, tenant_id: TenantIdLike) -> InvoicePreview:
        """The invoice this period would close with now: fee, usage lines with tiers, grants, credit, total."""
        return self.service.invoice_preview(tenant_id_str(tenant_id))


class CostReader:
    """The async face of `SyncCostReader`; each method runs its blocking twin on the library's worker pool."""

    def __init__(self, service: CostService | None = None) -> None:
        self._sync = SyncCostReader(service)

    @property
    def sync(self) -> SyncCostReader:
        return self._sync

    async def cost(self, tenant_id: TenantIdLike) -> TenantCost:
        """This period's usage rated so far, per priced resource and dimension value."""
        return await run_blocking(self._sync.cost, tenant_id)

    async def invoice_preview(self, tenant_id: TenantIdLike) -> InvoicePreview:
        """The invoice this period would close with now: fee, usage lines with tiers, grants, credit, total."""
        return await run_blocking(self._sync.invoice_preview, tenant_id)
