"""Cost and preview values. Amounts are Decimals in the currency's minor unit (cents, yen), rounded to a
whole minor unit per line as Stripe rounds; totals are sums of rounded lines."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from billing_platform.rating.models import RatedLine, TierCharge


@dataclass(frozen=True)
class UsageQuantity:
    """What a resource was used this period, and the part of it that carried each value of the resource's
    priced dimension (tokens per model). Usage of values without a price of their own is rated by the
    resource's price."""

    resource_type: str
    quantity: Decimal
    by_value: tuple[tuple[str, Decimal], ...] = ()


@dataclass(frozen=True)
class CostLine:
    """One priced line: a resource at its price, or one value of its dimension at that value's price."""

    resource_type: str
    dimension: str | None
    value: str | None
    stripe_price_id: str | None
    rated: RatedLine


@dataclass(frozen=True)
class EntityCost:
    """One entity's part of a resource's cost this period: the resource's exact amount (all its lines) times
    the entity's share of the resource's usage. Tiers apply to the tenant's total, so an entity has no price
    of its own: its part is an attribution, and the parts of all entities sum to the resource's amount
    when every unit of it carried an entity."""

    resource_type: str
    entity_id: str
    quantity: Decimal
    amount_exact: Decimal


@dataclass(frozen=True)
class TenantCost:
    """The period's usage rated so far: each line and their sum (`amount`). `currency` None: the plan has no
    prices (nothing is rated). `entities`: each entity's part of each resource's amount; `usage_complete_until`:
    the usage read model (which gives the per value and per entity usage) holds what was stored up to then."""

    tenant_id: str
    plan_id: str
    currency: str | None
    period_start: datetime
    period_end: datetime
    lines: tuple[CostLine, ...]
    entities: tuple[EntityCost, ...] = ()
    usage_complete_until: datetime | None = None

    @property
    def amount(self) -> Decimal:
        return sum((line.rated.amount for line in self.lines), Decimal(0))


class LineKind(StrEnum):
    FEE = "fee"  # the plan's recurring fee
    USAGE = "usage"  # a resource (or a dimension value) rated for the period
    GRANT = "grant"  # units from a grant: prepaid, shown at no charge
    CREDIT = "credit"  # money credit applied against the lines above (negative)


@dataclass(frozen=True)
class PreviewLine:
    kind: LineKind
    description: str
    amount: Decimal
    quantity: Decimal | None = None
    resource_type: str | None = None
    value: str | None = None
    stripe_price_id: str | None = None
    tiers: tuple[TierCharge, ...] = ()


@dataclass(frozen=True)
class InvoicePreview:
    """The invoice the period would close with now: `subtotal` (fee and usage lines), `credit` (money
    credit applied, at most the subtotal) and `total` = subtotal - credit (what would be charged)."""

    tenant_id: str
    plan_id: str
    currency: str | None
    period_start: datetime
    period_end: datetime
    lines: tuple[PreviewLine, ...]

    @property
    def subtotal(self) -> Decimal:
        return sum((line.amount for line in self.lines if line.kind is not LineKind.CREDIT), Decimal(0))

    @property
    def credit(self) -> Decimal:
        return -sum((line.amount for line in self.lines if line.kind is LineKind.CREDIT), Decimal(0))

    @property
    def total(self) -> Decimal:
        return self.subtotal - self.credit
