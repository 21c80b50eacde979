"""HTTP answers of `GET /v1/tenants/{tenant_id}/cost` and `GET /v1/tenants/{tenant_id}/invoice-preview`.
Amounts are integers in the currency's minor unit (as Stripe's `amount` fields); quantities and exact
per-unit prices are decimal strings."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from billing_platform.costs.models import CostLine, EntityCost, InvoicePreview, LineKind, PreviewLine, TenantCost
from billing_platform.quantities import decimal_str
from billing_platform.rating.models import TierCharge

EXACT_PLACES = Decimal("0.000001")  # an attributed part is a ratio: shown to a millionth of a minor unit


def _text(value: Decimal) -> str:
    return decimal_str(value) or "0"


class TierOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    tier: int = Field(description="1 for the first tier of the price")
    first: str = Field(description="The tier starts above this quantity (decimal string)")
    up_to: str | None = Field(description="The tier's last quantity; null for the last, unbounded tier")
    units: str = Field(description="Units of the line in this tier (decimal string)")
    unit_amount: str = Field(description="Price per unit in minor units, exact (decimal string)")
    flat_amount: str = Field(description="The tier's flat amount in minor units (decimal string)")
    amount: str = Field(description="units x unit_amount + flat_amount, exact, before the line is rounded")

    @classmethod
    def of(cls, tier: TierCharge) -> TierOut:
        return cls(
            tier=tier.tier,
            first=_text(tier.first),
            up_to=decimal_str(tier.last),
            units=_text(tier.units),
            unit_amount=_text(tier.unit_amount),
            flat_amount=_text(tier.flat_amount),
            amount=_text(tier.raw),
        )


class CostLineOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    resource_type: str
    dimension: str | None = Field(description="The dimension whose value has its own price; null: the resource's")
    value: str | None = Field(description="That dimension's value; null for the resource's own price")
    quantity: str = Field(description="Usage this period rated by this line (decimal string)")
    billable: str = Field(description="What is left after the included units (packages for a package price)")
    amount: int = Field(description="The line's amount in minor units, rounded half up as Stripe rounds a line")
    amount_exact: str = Field(description="The exact amount before rounding, in minor units (decimal string)")
    stripe_price_id: str | None
    tiers: list[TierOut]

    @classmethod
    def of(cls, line: CostLine) -> CostLineOut:
        rated = line.rated
        return cls(
            resource_type=line.resource_type,
            dimension=line.dimension,
            value=line.value,
            quantity=_text(rated.quantity),
            billable=_text(rated.billable),
            amount=int(rated.amount),
            amount_exact=_text(rated.raw),
            stripe_price_id=line.stripe_price_id,
            tiers=[TierOut.of(t) for t in rated.tiers],
        )


class EntityCostOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    resource_type: str
    entity_id: str
    quantity: str = Field(description="The entity's usage of the resource this period (decimal string)")
    amount_exact: str = Field(
        description="The entity's part of the resource's exact amount, in proportion to its usage (minor units, "
        "decimal string): tiers apply to the tenant's total, so this is an attribution, not a price of its own"
    )

    @classmethod
    def of(cls, part: EntityCost) -> EntityCostOut:
        return cls(
            resource_type=part.resource_type,
            entity_id=part.entity_id,
            quantity=_text(part.quantity),
            amount_exact=_text(part.amount_exact.quantize(EXACT_PLACES)),
        )


class CostOut(BaseModel):
    """`GET /v1/tenants/{tenant_id}/cost`."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str
    plan_id: str
    currency: str | None = Field(description="ISO 4217, lower case; null when the plan has no prices")
    period_start: str = Field(description="ISO 8601 UTC")
    period_end: str = Field(description="ISO 8601 UTC")
    amount: int = Field(description="The sum of the lines' amounts, in minor units")
    lines: list[CostLineOut]
    entities: list[EntityCostOut] = Field(
        description="Each entity's part of each priced resource's amount (at most 100 entities per resource)"
    )
    usage_complete_until: str | None = Field(
        description="ISO 8601 UTC: the usage read model (per value and per entity usage) holds what was stored "
        "up to this instant; null when it has nothing yet"
    )

    @classmethod
    def of(cls, cost: TenantCost) -> CostOut:
        return cls(
            tenant_id=cost.tenant_id,
            plan_id=cost.plan_id,
            currency=cost.currency,
            period_start=cost.period_start.isoformat(),
            period_end=cost.period_end.isoformat(),
            amount=int(cost.amount),
            lines=[CostLineOut.of(line) for line in cost.lines],
            entities=[EntityCostOut.of(part) for part in cost.entities],
            usage_complete_until=cost.usage_complete_until.isoformat() if cost.usage_complete_until else None,
        )


class PreviewLineOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: LineKind = Field(description="fee, usage, grant (prepaid units, no charge) or credit (negative)")
    description: str
    amount: int = Field(description="Minor units; negative for credit applied")
    quantity: str | None
    resource_type: str | None
    value: str | None = Field(description="The dimension value a usage line prices; null otherwise")
    stripe_price_id: str | None
    tiers: list[TierOut]

    @classmethod
    def of(cls, line: PreviewLine) -> PreviewLineOut:
        return cls(
            kind=line.kind,
            description=line.description,
            amount=int(line.amount),
            quantity=decimal_str(line.quantity),
            resource_type=line.resource_type,
            value=line.value,
            stripe_price_id=line.stripe_price_id,
            tiers=[TierOut.of(t) for t in line.tiers],
        )


class InvoicePreviewOut(BaseModel):
    """`GET /v1/tenants/{tenant_id}/invoice-preview`."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str
    plan_id: str
    currency: str | None = Field(description="ISO 4217, lower case; null when the plan has no prices")
    period_start: str = Field(description="ISO 8601 UTC")
    period_end: str = Field(description="ISO 8601 UTC")
    subtotal: int = Field(description="Fee and usage lines, in minor units")
    credit: int = Field(description="Money credit applied, at most the subtotal, in minor units")
    total: int = Field(description="subtotal - credit: what the period would charge if it closed now")
    lines: list[PreviewLineOut]

    @classmethod
    def of(cls, preview: InvoicePreview) -> InvoicePreviewOut:
        return cls(
            tenant_id=preview.tenant_id,
            plan_id=preview.plan_id,
            currency=preview.currency,
            period_start=preview.period_start.isoformat(),
            period_end=preview.period_end.isoformat(),
            subtotal=int(preview.subtotal),
            credit=int(preview.credit),
            total=int(preview.total),
            lines=[PreviewLineOut.of(line) for line in preview.lines],
        )
