"""`EntitlementService`: the one entry point of the entitlement use cases, a thin facade. Each public
method validates its input (422 before any I/O) and hands one request value and the shared
`EntitlementContext` to the module of its use case (the package docstring maps them)."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from billing_platform.catalog.models import Catalog
from billing_platform.dynamodb import utc_now
from billing_platform.entitlements import consume as consume_case
from billing_platform.entitlements import idempotency, plan_changes, views
from billing_platform.entitlements import release as release_case
from billing_platform.entitlements.context import DEFAULT_CACHE_TTL_SECONDS, EntitlementContext
from billing_platform.entitlements.entity_consume import consume_at_levels, release_at_levels
from billing_platform.entitlements.entity_take import LevelRequest, check_levels
from billing_platform.entitlements.models import (
    ConsumeRequest,
    EntitlementCheck,
    ReleaseRequest,
    TenantPlan,
    validate_quantity,
)
from billing_platform.entitlements.plans import plan_for
from billing_platform.entitlements.repository import EntitlementRepository
from billing_platform.entitlements.views import QuotaView, TenantEntitlements
from billing_platform.errors import ConflictError, UnprocessableError
from billing_platform.grants.repository import GrantRepository
from billing_platform.quantities import ONE
from billing_platform.settings import Settings, get_settings

if TYPE_CHECKING:
    from billing_platform.entitlements.capped import SpendCaps

__all__ = ["EntitlementService", "QuotaView", "TenantEntitlements"]


class EntitlementService:
    """Quota and feature decisions for tenants. Thread-safe; one instance per container.

    Promises: a hard quota never grants more than its limit, whatever the concurrency; a retried
    consume with the same idempotency key consumes once and answers the same; a release never takes
    `used` below zero; a period is never granted twice. Plan and layout look-ups are cached for
    `cache_ttl_seconds`; remaining quota never is."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        repository: EntitlementRepository | None = None,
        catalog: Catalog | None = None,
        clock: Callable[[], datetime] = utc_now,
        cache_ttl_seconds: float = DEFAULT_CACHE_TTL_SECONDS,
        rng: random.Random | None = None,
        grants: GrantRepository | None = None,
    ) -> None:
        settings = settings or get_settings()
        self._ctx = EntitlementContext(
            settings=settings,
            repo=repository or EntitlementRepository(settings),
            catalog=catalog or settings.catalog,
            clock=clock,
            rng=rng or random.Random(),
            cache_ttl_seconds=cache_ttl_seconds,
            grants=grants,
        )
        self._repo = self._ctx.repo
        self._spend: SpendCaps | None = None

    @property
    def catalog(self) -> Catalog:
        return self._ctx.catalog

    @property
    def context(self) -> EntitlementContext:
        """The use cases' shared state, for use cases of other domains built on the same quotas
        (reservations take through `entitlements.take` with it)."""
        return self._ctx

    @property
    def enforcing(self) -> bool:
        return self._ctx.enforcing

    def validate(self, resource_type: str, quantity: Decimal | None) -> None:
        """422 for an unknown resource type or an unacceptable quantity, before any I/O."""
        self._ctx.catalog.require_resource_type(resource_type)
        if quantity is not None:
            try:
                validate_quantity(quantity)
            except ValueError as exc:
                raise UnprocessableError(f"quantity: {exc}", code="invalid_quantity") from None

    # --- plans and features --------------------------------------------------------------------

    def plan_for(self, tenant_id: str, *, fresh: bool = False) -> TenantPlan:
        """The tenant's plan (cached), or the catalog default plan in calendar months for a known
        tenant without a subscription. NotFoundError for a tenant the platform does not know."""
        return plan_for(self._ctx, tenant_id, fresh=fresh)

    def tenant_known(self, tenant_id: str) -> bool:
        """Whether the platform knows the tenant: a plan, a billing profile or an API key (not cached)."""
        return self._repo.tenant_known(tenant_id)

    def has_feature(self, tenant_id: str, feature: str) -> bool:
        """Whether the tenant's plan has `feature` (False while suspended); cached with the plan."""
        return self.plan_for(tenant_id).feature(feature)

    # --- consume, check, release ---------------------------------------------------------------

    def consume(
        self,
        tenant_id: str,
        resource_type: str,
        quantity: Decimal = ONE,
        *,
        idempotency_key: str | None = None,
        entity_id: str | None = None,
    ) -> EntitlementCheck:
        """Check and record `quantity` atomically: `consume_request` with these values."""
        return self.consume_request(ConsumeRequest(tenant_id, resource_type, quantity, idempotency_key, entity_id))

    def consume_request(self, request: ConsumeRequest) -> EntitlementCheck:
        """Check and record the request's quantity atomically. Denied checks consume nothing. With an
        idempotency key every retry gets the first answer, a denial included (`idempotency`); without,
        each call is a take of its own (`consume`). With `entity_id`, counted at every level from that
        entity up to the tenant's quota, all or nothing (`entity_consume`). A tenant with a spend cap takes
        priced resources with the period's spend in the same transaction (`capped`);
        `SpendCapReachedError` when a hard cap refuses."""
        tenant_id, resource_type, quantity = request.tenant_id, request.resource_type, request.quantity
        self.validate(resource_type, quantity)
        # A resource no plan prices costs nothing: no cap can concern it, and its hot path looks nothing up.
        cap = self.spend_caps.cap_for(tenant_id) if resource_type in self._ctx.catalog.priced_resources else None
        if cap is not None:
            if request.entity_id is not None:
                capped = self.spend_caps.consume_for_entity(cap, request)
            else:
                capped = self.spend_caps.consume(cap, tenant_id, resource_type, quantity, request.idempotency_key)
            if capped is not None:
                return capped
        if request.entity_id is not None:
            levels = LevelRequest(tenant_id, resource_type, quantity, request.entity_id)
            return consume_at_levels(self._ctx, levels, request.idempotency_key)
        if request.idempotency_key is None:
            return consume_case.consume(self._ctx, request)
        return idempotency.consume(self._ctx, request)

    def check(
        self, tenant_id: str, resource_type: str, quantity: Decimal = ONE, *, entity_id: str | None = None
    ) -> EntitlementCheck:
        """Would `quantity` be granted now (at every level, with `entity_id`)? Reads; writes nothing."""
        self.validate(resource_type, quantity)
        if entity_id is not None:
            return check_levels(self._ctx, LevelRequest(tenant_id, resource_type, quantity, entity_id))
        return views.check(self._ctx, ConsumeRequest(tenant_id, resource_type, quantity))

    @property
    def spend_caps(self) -> SpendCaps:
        """The tenants' spend caps (cached per container like plans) and the capped consume."""
        if self._spend is None:
            # Imported on first use: a tenant without caps never loads the capped take's modules.
            from billing_platform.entitlements.capped import SpendCaps

            self._spend = SpendCaps(self._ctx)
        return self._spend

    def _priced(self, resource_type: str) -> bool:
        return resource_type in self._ctx.catalog.priced_resources

    def refuse_under_cap(self, tenant_id: str, resource_type: str, what: str) -> None:
        """409 for a write that would move a priced resource's usage of a capped tenant outside the
        spend's transaction (its spend would no longer be the rating of its usage)."""
        if resource_type not in self._ctx.catalog.priced_resources:
            return
        cap = self.spend_caps.cap_for(tenant_id)
        if cap is not None and self.spend_caps.price_of(tenant_id, resource_type) is not None:
            raise ConflictError(
                f"{what} of {resource_type} is not available while tenant {tenant_id} has a spend cap",
                code="spend_cap_unsupported",
            )

    def release(
        self,
        tenant_id: str,
        resource_type: str,
        quantity: Decimal | None = None,
        *,
        idempotency_key: str | None = None,
        period_end: datetime | None = None,
        entity_id: str | None = None,
    ) -> EntitlementCheck:
        """Give quota back (work that failed). With `idempotency_key`, exactly what that consume took,
        once, and only within its period. Without, up to `quantity`, never below zero used (and with
        `period_end`, only while the quota is still in that period). The answer's `quantity` is the
        amount actually given back. With `entity_id`, at every level of that entity's takes too."""
        self.validate(resource_type, quantity)
        if entity_id is not None:
            self.refuse_under_cap(tenant_id, resource_type, "a release for an entity")
            levels = LevelRequest(tenant_id, resource_type, quantity or ONE, entity_id)
            return release_at_levels(self._ctx, levels, quantity, idempotency_key)
        request = ReleaseRequest(tenant_id, resource_type, quantity, idempotency_key, period_end, entity_id)
        # A capped tenant's release gives the rated cost back on the spend in the same transactions.
        spend = self.spend_caps.leg(tenant_id, resource_type, fresh=True) if self._priced(resource_type) else None
        return release_case.release(self._ctx, request, spend)

    def release_taken(
        self,
        tenant_id: str,
        resource_type: str,
        shards_used: tuple[tuple[int, Decimal], ...],
        *,
        period_end: datetime | None = None,
    ) -> EntitlementCheck:
        """Give back takes as a consume answer lists them ((shard, quantity), shard -1: any shard)."""
        return release_case.release_taken(self._ctx, tenant_id, resource_type, shards_used, period_end=period_end)

    def entitlements(self, tenant_id: str) -> TenantEntitlements:
        """Every quota (limit, used, remaining, period) and feature of the tenant."""
        return views.entitlements(self._ctx, tenant_id)

    # --- effects of the subscription lifecycle (billing_platform.subscriptions.webhooks) --------

    def apply_plan(
        self,
        tenant_id: str,
        plan_id: str,
        *,
        period_start: datetime,
        period_end: datetime,
        status: str = "active",
        source_version: int | None = None,
    ) -> None:
        """Make `plan_id` the tenant's plan for [period_start, period_end): quotas change at once
        (an upgrade keeps this period's usage and raises the limit), a later period starts afresh
        (a renewal), unless a lazy rollover already started that same period. An application with
        a `source_version` older than the stored one changes nothing."""
        plan_changes.apply_plan(self._ctx, tenant_id, plan_id, (period_start, period_end), status, source_version)
        self._resolve_shares(tenant_id)

    def suspend(self, tenant_id: str, reason: str) -> None:
        """Deny every quota and feature of the tenant (usage stays visible) until a plan is applied."""
        plan_changes.suspend(self._ctx, tenant_id, reason)

    def revoke(self, tenant_id: str) -> None:
        """Back to the catalog default plan (subscription canceled). Usage of the live period carries
        over, so cancelling never refills a quota."""
        plan_changes.revoke(self._ctx, tenant_id)
        self._resolve_shares(tenant_id)

    def _resolve_shares(self, tenant_id: str) -> None:
        """The plan quota changed: entity shares resolved against it follow (`EntityService.resolve_shares`).
        Entities live in the billing table: a repository standing in for it (a test's) holds none."""
        if not isinstance(self._ctx.repo, EntitlementRepository):
            return
        # Imported here: the entities package is not needed on any take path, only after a plan change.
        from billing_platform.auth.caller import Actor
        from billing_platform.entities.repository import EntityRepository
        from billing_platform.entities.service import EntityService

        entities = EntityService(
            self._ctx.settings,
            plans=self,
            repository=EntityRepository(self._ctx.settings, self._ctx.repo.injected_client),
        )
        entities.resolve_shares(tenant_id, actor=Actor("system:plan_change"))
