"""Rated values. Amounts are Decimals in the currency's minor unit (cents, yen); `amount` fields are
rounded to a whole minor unit, `raw` ones are exact."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class TierCharge:
    """What one tier adds to a line: `units` at `unit_amount` each plus the tier's `flat_amount`
    (`first`, `last`: the tier's bounds; `last` None when it has none)."""

    tier: int
    first: Decimal
    last: Decimal | None
    units: Decimal
    unit_amount: Decimal
    flat_amount: Decimal
    raw: Decimal


@dataclass(frozen=True)
class RatedLine:
    """One quantity rated under one price: `billable` is what is left after the included units (and, for a
    package price, the packages it makes); `amount` is `raw` rounded as Stripe rounds a line."""

    currency: str
    quantity: Decimal
    billable: Decimal
    tiers: tuple[TierCharge, ...]
    raw: Decimal
    amount: Decimal


@dataclass(frozen=True)
class Cost:
    """The cost of `quantity` used after `used_before`: what it adds to the line's rounded amount, and the
    exact (unrounded) difference."""

    used_before: Decimal
    quantity: Decimal
    amount: Decimal
    raw: Decimal


@dataclass(frozen=True)
class LinearPiece:
    """A range of the period's usage over which the line's exact amount grows by `slope` per unit: a take
    whose usage before and after both lie in it costs exactly `slope * quantity`, whatever the usage
    before it was. `low`/`high` bound it (None: unbounded above); `*_closed` say whether the bound itself
    belongs to it."""

    low: Decimal
    low_closed: bool
    high: Decimal | None
    high_closed: bool
    slope: Decimal

    def holds(self, value: Decimal) -> bool:
        above = value >= self.low if self.low_closed else value > self.low
        if self.high is None:
            return above
        below = value <= self.high if self.high_closed else value < self.high
        return above and below
