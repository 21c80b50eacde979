"""Rate quantities under catalog prices, as Stripe computes an invoice line.

- per unit: quantity x `unit_amount[_decimal]`;
- package (`transform_quantity`): the quantity divided by `divide_by`, rounded up or down to whole
  packages, x the unit amount;
- graduated tiers: each tier's units at its unit amount, plus the flat amount of every tier reached;
- volume tiers: every unit at the unit amount of the tier the total falls in, plus that tier's flat amount.

The included units of the plan come off first (they cost nothing). The exact amount is rounded to a whole
minor unit once per line, half up (Stripe: 0.05 cents x 30 = 1.5 cents is charged 2 cents), so the cost of
a take is the difference of two rounded line amounts and a period's takes add up to its line exactly.
A zero quantity rates to zero (no tier is reached, so no flat amount is charged).
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

from billing_platform.catalog.prices import BillingScheme, PriceTier, Round, TiersMode, UsagePrice
from billing_platform.quantities import ZERO
from billing_platform.rating.models import Cost, LinearPiece, RatedLine, TierCharge

_WHOLE = Decimal(1)


def round_minor(raw: Decimal) -> Decimal:
    """An exact amount rounded to a whole minor unit, half up, as Stripe rounds an invoice line."""
    return raw.quantize(_WHOLE, rounding=ROUND_HALF_UP)


def rate(price: UsagePrice, quantity: Decimal) -> RatedLine:
    """The period's `quantity` of one line rated under `price`: its tiers, exact and rounded amounts."""
    if not quantity.is_finite() or quantity < 0:
        raise ValueError(f"a quantity to rate must be finite and >= 0, got {quantity}")
    billable = max(ZERO, quantity - price.included)
    charges: tuple[TierCharge, ...]
    if price.billing_scheme is BillingScheme.PER_UNIT:
        unit = price.unit() or ZERO
        if price.transform_quantity is not None:
            rounding = ROUND_CEILING if price.transform_quantity.round is Round.UP else ROUND_FLOOR
            billable = (billable / price.transform_quantity.divide_by).quantize(_WHOLE, rounding=rounding)
        raw = billable * unit
        charges = (TierCharge(1, ZERO, None, billable, unit, ZERO, raw),) if billable else ()
    elif price.tiers_mode is TiersMode.VOLUME:
        charges = _volume(price.tiers, billable)
    else:
        charges = _graduated(price.tiers, billable)
    raw = sum((c.raw for c in charges), ZERO)
    return RatedLine(price.currency, quantity, billable, charges, raw, round_minor(raw))


def raw_amount(price: UsagePrice, quantity: Decimal) -> Decimal:
    """The exact (unrounded) amount of a line of `quantity`."""
    return rate(price, quantity).raw


def cost(price: UsagePrice, used_before: Decimal, quantity: Decimal) -> Cost:
    """What `quantity` used after `used_before` (this period, this line) adds to the line. Negative under
    volume tiers when it moves the whole line into a cheaper tier; negative `quantity` (a release) too."""
    after = used_before + quantity
    if after < 0:
        raise ValueError(f"releasing {-quantity} from {used_before} used would leave less than nothing")
    before_line, after_line = rate(price, used_before), rate(price, after)
    return Cost(used_before, quantity, after_line.amount - before_line.amount, after_line.raw - before_line.raw)


def _tier_unit(tier: PriceTier) -> Decimal:
    return tier.unit() or ZERO


def _tier_flat(tier: PriceTier) -> Decimal:
    return tier.flat() or ZERO


def _graduated(tiers: tuple[PriceTier, ...], billable: Decimal) -> tuple[TierCharge, ...]:
    charges: list[TierCharge] = []
    low = ZERO
    for index, tier in enumerate(tiers, start=1):
        if billable <= low:
            break
        top = billable if tier.up_to is None else min(billable, tier.up_to)
        units = top - low
        unit, flat = _tier_unit(tier), _tier_flat(tier)
        charges.append(TierCharge(index, low, tier.up_to, units, unit, flat, units * unit + flat))
        if tier.up_to is None:
            break
        low = tier.up_to
    return tuple(charges)


def _volume(tiers: tuple[PriceTier, ...], billable: Decimal) -> tuple[TierCharge, ...]:
    if billable <= 0:
        return ()
    low = ZERO
    for index, tier in enumerate(tiers, start=1):
        if tier.up_to is None or billable <= tier.up_to:
            unit, flat = _tier_unit(tier), _tier_flat(tier)
            return (TierCharge(index, low, tier.up_to, billable, unit, flat, billable * unit + flat),)
        low = tier.up_to
    raise AssertionError("the catalog guarantees an unbounded last tier")


def _pieces(price: UsagePrice) -> list[LinearPiece]:
    """The ranges of billable quantity (before the included units are added back) on which the exact
    amount is affine, in order. Bounds where the amount jumps (a flat amount, a new package, a volume
    tier) are open on the side that does not share the value."""
    if price.billing_scheme is BillingScheme.PER_UNIT:
        unit = price.unit() or ZERO
        if price.transform_quantity is None:
            return [LinearPiece(ZERO, True, None, False, unit)]
        # Packages: a step function; only takes inside one step are priced without reading usage.
        return []
    pieces: list[LinearPiece] = []
    low = ZERO
    previous_end = ZERO  # the amount at `low`
    for tier in price.tiers:
        unit, flat = _tier_unit(tier), _tier_flat(tier)
        if price.tiers_mode is TiersMode.GRADUATED:
            closed = flat == 0  # continuous at `low` unless entering the tier charges its flat amount
            start = previous_end + flat
        else:
            start = low * unit + flat
            closed = start == previous_end
        pieces.append(LinearPiece(low, closed, tier.up_to, True, unit))
        if tier.up_to is None:
            break
        previous_end = (
            start + (tier.up_to - low) * unit if price.tiers_mode is TiersMode.GRADUATED else tier.up_to * unit + flat
        )
        low = tier.up_to
    return pieces


def linear_piece(price: UsagePrice, used_before: Decimal, quantity: Decimal) -> LinearPiece | None:
    """The piece of this line, in terms of the period's usage (included units counted), on which both
    `used_before` and `used_before + quantity` lie: a take there costs `slope * quantity` exactly (no
    rounding: the exact amount). None when the take crosses a point where the price changes; its exact
    cost then depends on the exact usage before it (`cost`)."""
    after = used_before + quantity
    included = price.included
    candidates: list[LinearPiece] = []
    if included > 0:
        candidates.append(LinearPiece(ZERO, True, included, True, ZERO))
    for piece in _pieces(price):
        high = None if piece.high is None else piece.high + included
        # Billable zero is usage `included`: closed there only if the amount does not jump.
        candidates.append(LinearPiece(piece.low + included, piece.low_closed, high, piece.high_closed, piece.slope))
    for piece in candidates:
        if piece.holds(used_before) and piece.holds(after):
            return piece
    return None
