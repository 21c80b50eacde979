"""Spend caps and the spend of a period: values and pure decisions, no I/O.

Spend is money: the exact amount the rating engine gives the usage counted this period, in the plan
currency's minor unit (before the per-line rounding of an invoice; with integer unit amounts and integer
quantities the two are equal). A cap is on the period's total spend and, optionally, on one resource's.

How a take's spend is made exact without reading the counter first (`SpendStep`): the line's exact amount
is affine on pieces of the period's usage (a tier, the included units: `rating.linear_piece`). When the
usage before the take and after it lie in one piece, the take costs `slope x quantity` whatever the usage
was, so the write is conditioned on the usage lying in the piece's range (concurrent takes inside one
piece all commit). A take that crosses a point where the price changes is conditioned on the exact usage
it was priced at. Either way the condition makes the committed spend the rating of the committed usage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from billing_platform.catalog.prices import Currency, UsagePrice
from billing_platform.entities.models import valid_entity_id
from billing_platform.quantities import ZERO
from billing_platform.rating.models import LinearPiece
from billing_platform.rating.service import cost, linear_piece

DEFAULT_SPEND_THRESHOLDS: tuple[Decimal, ...] = (Decimal(50), Decimal(80), Decimal(100))
MAX_CAP = 10**12  # Stripe's bound on an amount, in minor units
MAX_ENTITY_CAPS = 100  # each is an attribute of the cap and spend items (400 KB items, small per-take writes)


class CapKind(StrEnum):
    HARD = "hard"  # a take that would pass the cap is refused (402 spend_cap_reached)
    SOFT = "soft"  # takes go on; threshold events tell the tenant


class SpendCapRequest(BaseModel):
    """`PUT /v1/tenants/{tenant_id}/spend-cap`: a cap in the plan's currency, in its minor unit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: Currency
    amount: int = Field(gt=0, lt=MAX_CAP, description="The period's cap, in the currency's minor unit")
    kind: CapKind = CapKind.HARD
    resources: dict[str, int] = Field(
        default_factory=dict, description="Per resource caps (minor units), within the period's cap"
    )
    entities: dict[str, int] = Field(
        default_factory=dict,
        max_length=MAX_ENTITY_CAPS,
        description="Per entity caps (minor units) on the cost of the takes made for that entity",
    )
    thresholds: tuple[Decimal, ...] = Field(default=DEFAULT_SPEND_THRESHOLDS, max_length=10)

    @model_validator(mode="after")
    def _consistent(self) -> SpendCapRequest:
        for resource, amount in self.resources.items():
            if not 0 < amount < MAX_CAP:
                raise ValueError(f"the cap on {resource} must be a positive amount in minor units")
        for entity_id, amount in self.entities.items():
            if not valid_entity_id(entity_id):
                raise ValueError(f"{entity_id!r} is not an entity id")
            if not 0 < amount < MAX_CAP:
                raise ValueError(f"the cap on entity {entity_id} must be a positive amount in minor units")
        if list(self.thresholds) != sorted(set(self.thresholds)) or any(not 0 < t <= 100 for t in self.thresholds):
            raise ValueError("thresholds are percentages in (0, 100], strictly increasing")
        return self


@dataclass(frozen=True)
class SpendCap:
    tenant_id: str
    currency: str
    amount: Decimal
    kind: CapKind
    resources: dict[str, Decimal] = field(default_factory=dict)
    thresholds: tuple[Decimal, ...] = DEFAULT_SPEND_THRESHOLDS
    set_by: str = ""
    entities: dict[str, Decimal] = field(default_factory=dict)
    set_at: datetime | None = None

    @property
    def hard(self) -> bool:
        return self.kind is CapKind.HARD

    def to_dict(self) -> dict[str, object]:
        return {
            "tenant_id": self.tenant_id,
            "currency": self.currency,
            "amount": int(self.amount),
            "kind": self.kind.value,
            "resources": {r: int(a) for r, a in sorted(self.resources.items())},
            "entities": {e: int(a) for e, a in sorted(self.entities.items())},
            "thresholds": [str(t) for t in self.thresholds],
            "set_by": self.set_by,
            "set_at": self.set_at.isoformat() if self.set_at else None,
        }


@dataclass(frozen=True)
class SpendState:
    """A period's spend item as last seen: per resource the usage counted and its exact amount, and the
    total. Missing lines are zero."""

    used: dict[str, Decimal] = field(default_factory=dict)
    spent: dict[str, Decimal] = field(default_factory=dict)
    total: Decimal = ZERO
    by_entity: dict[str, Decimal] = field(default_factory=dict)  # the cost of the takes made for each entity

    def used_of(self, resource: str) -> Decimal:
        return self.used.get(resource, ZERO)

    def spent_of(self, resource: str) -> Decimal:
        return self.spent.get(resource, ZERO)

    def entity_spent(self, entity_id: str) -> Decimal:
        return self.by_entity.get(entity_id, ZERO)


@dataclass(frozen=True)
class SpendStep:
    """How one take of `quantity` changes a line: by `delta` (exact, minor units). `piece` set: valid for any
    usage inside it; else valid only at usage `exactly`."""

    quantity: Decimal
    delta: Decimal
    piece: LinearPiece | None
    exactly: Decimal


def spend_step(price: UsagePrice, used_guess: Decimal, quantity: Decimal) -> SpendStep:
    """The step of a take priced at the usage last seen (`used_guess`): the piece's when the take stays in
    one piece, else the exact difference at that usage."""
    piece = linear_piece(price, used_guess, quantity)
    if piece is not None:
        return SpendStep(quantity, piece.slope * quantity, piece, used_guess)
    return SpendStep(quantity, cost(price, used_guess, quantity).raw, None, used_guess)


@dataclass(frozen=True)
class CapRefusal:
    """Why a hard cap refused a take: the cap (period or the resource's), the spend counted, the take's cost."""

    scope: str  # "period" or the resource type
    cap: Decimal
    spend: Decimal
    cost: Decimal
    currency: str


def refusal(
    cap: SpendCap, resource: str, state: SpendState, delta: Decimal, entity_id: str | None = None
) -> CapRefusal | None:
    """The hard cap this take (for `entity_id`, if named) would pass, priced at the exact state read (None: it
    fits every cap). An entity's cap is scoped `entity:<id>`."""
    if not cap.hard or delta <= 0:
        return None
    if state.total + delta > cap.amount:
        return CapRefusal("period", cap.amount, state.total, delta, cap.currency)
    resource_cap = cap.resources.get(resource)
    if resource_cap is not None and state.spent_of(resource) + delta > resource_cap:
        return CapRefusal(resource, resource_cap, state.spent_of(resource), delta, cap.currency)
    entity_cap = cap.entities.get(entity_id) if entity_id is not None else None
    if entity_id is not None and entity_cap is not None and state.entity_spent(entity_id) + delta > entity_cap:
        return CapRefusal(f"entity:{entity_id}", entity_cap, state.entity_spent(entity_id), delta, cap.currency)
    return None


def crossed_percentages(
    thresholds: tuple[Decimal, ...], cap: Decimal, before: Decimal, after: Decimal
) -> list[Decimal]:
    """Thresholds (percent of `cap`) the spend passed going from `before` to `after`."""
    return [p for p in thresholds if before < cap * p / 100 <= after]


def budget_left(cap: SpendCap, resource: str, state: SpendState, entity_id: str | None = None) -> Decimal | None:
    """What a hard cap still allows this resource (for `entity_id`, if named) to add to the spend (None: no
    hard cap)."""
    if not cap.hard:
        return None
    left = cap.amount - state.total
    resource_cap = cap.resources.get(resource)
    if resource_cap is not None:
        left = min(left, resource_cap - state.spent_of(resource))
    entity_cap = cap.entities.get(entity_id) if entity_id is not None else None
    if entity_id is not None and entity_cap is not None:
        left = min(left, entity_cap - state.entity_spent(entity_id))
    return max(left, ZERO)


def affordable(price: UsagePrice, used: Decimal, wanted: Decimal, budget: Decimal) -> Decimal:
    """A quantity up to `wanted` whose cost after `used` fits in `budget`: the largest in whole units (or in
    1/1024ths of `wanted` when it is fractional) that a bisection finds. Exact under per-unit and graduated
    prices, where cost grows with quantity; under volume tiers a quantity it returns always fits, but a
    larger one past a cheaper tier's bound might too."""
    if cost(price, used, wanted).raw <= budget:
        return wanted
    step = Decimal(1) if wanted == wanted.to_integral_value() else wanted / 1024
    low, high = 0, int(wanted / step)  # low fits (zero costs nothing), high does not
    while high - low > 1:
        middle = (low + high) // 2
        if cost(price, used, step * middle).raw <= budget:
            low = middle
        else:
            high = middle
    return step * low
