"""The running cost and the invoice preview. `rate_usage`, `tenant_cost`, `entity_costs` and `invoice_preview`
are pure (usage in, rated lines out: the same engine rates takes, costs and previews); `CostService` reads
the period's usage from the quota counters (what the enforcement counted, so what is rated is what was let
through), the tenant's grants, and, given the usage read model, the usage per value of a priced dimension
(tokens per model) and per entity from its grouped answers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

from billing_platform.catalog.models import ENTITY_DIMENSION
from billing_platform.catalog.prices import PlanPricing
from billing_platform.costs.models import (
    CostLine,
    EntityCost,
    InvoicePreview,
    LineKind,
    PreviewLine,
    TenantCost,
    UsageQuantity,
)
from billing_platform.entitlements.service import EntitlementService, TenantEntitlements
from billing_platform.grants.models import Grant, draw_order
from billing_platform.quantities import ZERO
from billing_platform.rating.service import rate
from billing_platform.usage.models import Granularity, SeriesQuery, floor_to
from billing_platform.usage.queries import MAX_GROUPS, SyncUsageAggregator


def rate_usage(pricing: PlanPricing, usage: Iterable[UsageQuantity]) -> tuple[CostLine, ...]:
    """One line per priced resource (its price on the usage no value of its own prices), then one per
    dimension value with a price of its own; resources the plan does not price are not rated."""
    lines: list[CostLine] = []
    for used in sorted(usage, key=lambda u: u.resource_type):
        priced = pricing.resources.get(used.resource_type)
        if priced is None:
            continue
        own = {value: quantity for value, quantity in used.by_value if value in priced.by_value}
        rest = used.quantity - sum(own.values(), ZERO)
        if rest < 0:
            raise ValueError(f"{used.resource_type}: the values' usage {sum(own.values())} exceeds the total")
        resource_price = priced.price
        lines.append(
            CostLine(used.resource_type, None, None, resource_price.stripe_price_id, rate(resource_price, rest))
        )
        for value in sorted(own):
            price = priced.by_value[value]
            lines.append(
                CostLine(used.resource_type, priced.dimension, value, price.stripe_price_id, rate(price, own[value]))
            )
    return tuple(lines)


def tenant_cost(
    entitlements: TenantEntitlements, pricing: PlanPricing | None, usage: Sequence[UsageQuantity]
) -> TenantCost:
    """The period's cost so far from its usage."""
    plan = entitlements.plan
    lines = rate_usage(pricing, usage) if pricing is not None else ()
    return TenantCost(
        tenant_id=plan.tenant_id,
        plan_id=plan.plan_id,
        currency=pricing.currency if pricing is not None else None,
        period_start=plan.period_start,
        period_end=plan.period_end,
        lines=lines,
    )


def invoice_preview(
    cost: TenantCost,
    pricing: PlanPricing | None,
    grants: Sequence[Grant],
    *,
    credit_balance: Decimal = ZERO,
) -> InvoicePreview:
    """The invoice the period would close with: the plan's fee, each usage line with its tiers, the units
    grants covered (prepaid, no charge) and money credit applied up to the subtotal."""
    lines: list[PreviewLine] = []
    if pricing is not None and pricing.fee is not None:
        fee = pricing.fee
        lines.append(
            PreviewLine(
                LineKind.FEE,
                f"{cost.plan_id} plan fee",
                Decimal(fee.unit_amount),
                quantity=Decimal(1),
                stripe_price_id=fee.stripe_price_id,
            )
        )
    for line in cost.lines:
        rated = line.rated
        label = line.resource_type if line.value is None else f"{line.resource_type} ({line.dimension}={line.value})"
        lines.append(
            PreviewLine(
                LineKind.USAGE,
                f"{label}: {rated.quantity} used, {rated.billable} billable",
                rated.amount,
                quantity=rated.quantity,
                resource_type=line.resource_type,
                value=line.value,
                stripe_price_id=line.stripe_price_id,
                tiers=rated.tiers,
            )
        )
    for grant in sorted(grants, key=draw_order):
        if grant.used > 0:
            lines.append(
                PreviewLine(
                    LineKind.GRANT,
                    f"{grant.resource_type}: {grant.used} units from grant {grant.grant_id} (prepaid)",
                    ZERO,
                    quantity=grant.used,
                    resource_type=grant.resource_type,
                )
            )
    subtotal = sum((line.amount for line in lines), ZERO)
    applied = min(max(credit_balance, ZERO), max(subtotal, ZERO))
    if applied > 0:
        lines.append(PreviewLine(LineKind.CREDIT, "money credit applied", -applied))
    return InvoicePreview(
        tenant_id=cost.tenant_id,
        plan_id=cost.plan_id,
        currency=cost.currency,
        period_start=cost.period_start,
        period_end=cost.period_end,
        lines=tuple(lines),
    )


def entity_costs(lines: Sequence[CostLine], by_entity: dict[str, dict[str, Decimal]]) -> tuple[EntityCost, ...]:
    """Each entity's part of each resource's exact amount, in proportion to its usage of the resource
    (`by_entity`: resource -> entity -> usage). The parts are shares of the lines' total quantity."""
    out: list[EntityCost] = []
    for resource, entities in sorted(by_entity.items()):
        mine = [line for line in lines if line.resource_type == resource]
        quantity = sum((line.rated.quantity for line in mine), ZERO)
        amount = sum((line.rated.raw for line in mine), ZERO)
        for entity_id, used in sorted(entities.items()):
            share = amount * used / quantity if quantity > 0 else ZERO
            out.append(EntityCost(resource, entity_id, used, share))
    return tuple(out)


class CostService:
    """The running cost and invoice preview of tenants. Thread-safe; one instance per container. With
    `usage` (the read model's queries) the cost is also split per priced dimension value and per entity."""

    def __init__(
        self, entitlements: EntitlementService | None = None, usage: SyncUsageAggregator | None = None
    ) -> None:
        self._entitlements = entitlements or EntitlementService()
        self._usage_reader = usage

    def _usage(self, tenant_id: str) -> tuple[TenantEntitlements, PlanPricing | None, list[UsageQuantity]]:
        view = self._entitlements.entitlements(tenant_id)
        pricing = self._entitlements.catalog.plan(view.plan.plan_id).pricing
        return view, pricing, [UsageQuantity(q.resource_type, q.used) for q in view.quotas]

    def cost(self, tenant_id: str) -> TenantCost:
        """This period's cost so far, per priced resource, and (with the read model) per priced dimension
        value and per entity."""
        view, pricing, usage = self._usage(tenant_id)
        reader = self._usage_reader
        if reader is None or pricing is None:
            return tenant_cost(view, pricing, usage)
        plan = view.plan
        start = floor_to(Granularity.HOUR, plan.period_start)
        last = min(self._entitlements.context.clock(), plan.period_end)
        end = floor_to(Granularity.HOUR, last) + timedelta(hours=1)
        split: list[UsageQuantity] = []
        by_entity: dict[str, dict[str, Decimal]] = {}
        complete: datetime | None = None
        for used in usage:
            priced = pricing.resources.get(used.resource_type)
            if priced is None:
                split.append(used)
                continue
            query = SeriesQuery(
                tenant_id, used.resource_type, Granularity.MONTH, start, end, ENTITY_DIMENSION, MAX_GROUPS
            )
            entities = reader.series(query)
            complete = entities.complete_until
            by_entity[used.resource_type] = {g.value: g.total for g in entities.groups}
            if priced.dimension is None or not priced.by_value:
                split.append(used)
                continue
            values = reader.series(replace(query, group_by=priced.dimension))
            own = tuple((g.value, g.total) for g in values.groups if g.value in priced.by_value)
            # The counters count what was let through; the read model what was metered. Should more have
            # been metered for the priced values than counted, the values' usage is the resource's.
            quantity = max(used.quantity, sum((q for _v, q in own), ZERO))
            split.append(UsageQuantity(used.resource_type, quantity, own))
        cost = tenant_cost(view, pricing, split)
        return replace(cost, entities=entity_costs(cost.lines, by_entity), usage_complete_until=complete)

    def invoice_preview(self, tenant_id: str) -> InvoicePreview:
        """The invoice this period would close with if it closed now."""
        cost = self.cost(tenant_id)
        pricing = self._entitlements.catalog.plan(cost.plan_id).pricing
        grants = self._entitlements.context.tenant_grants.list(tenant_id, consistent=False)
        return invoice_preview(cost, pricing, grants)
