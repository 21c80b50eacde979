"""What a plan charges, in Stripe's price models: per unit (`unit_amount` or `unit_amount_decimal`),
package (`transform_quantity`: divide, round up or down), graduated and volume tiers (a unit and a flat
amount per tier), in one ISO 4217 currency. Amounts are in the currency's minor unit, as Stripe's are
(cents for USD, yen for JPY). Pure values: the rating engine (`billing_platform.rating`) prices them."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

# ISO 4217 code -> digits of its minor unit, for the currencies Stripe charges in. Stripe's zero-decimal
# currencies take amounts in whole units; its three-decimal ones in thousandths.
CURRENCY_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        (
            "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf",
            "xof", "xpf",
        ),
        0,
    ),
    **dict.fromkeys(("bhd", "jod", "kwd", "omr", "tnd"), 3),
    **dict.fromkeys(
        (
            "usd", "eur", "gbp", "chf", "cad", "aud", "nzd", "sek", "nok", "dkk", "pln", "czk", "huf", "ron",
            "bgn", "inr", "brl", "mxn", "sgd", "hkd", "cny", "zar", "ils", "try", "thb", "myr", "php", "idr",
            "aed", "sar", "twd", "cop", "pen", "ars", "egp", "ngn", "kes",
        ),
        2,
    ),
}  # fmt: skip

# Stripe's own bounds: unit_amount_decimal has at most 12 decimal places; amounts stay below 10^12 minor units.
MAX_DECIMALS = 12
MAX_AMOUNT = Decimal(10) ** 12


def _currency_code(value: Any) -> Any:
    if isinstance(value, str):
        code = value.lower()
        if code not in CURRENCY_EXPONENTS:
            raise ValueError(f"unknown currency {value!r} (an ISO 4217 code Stripe charges in, such as usd)")
        return code
    return value


# A currency as Stripe spells it (lower case ISO 4217); an unknown code is refused.
Currency = Annotated[str, BeforeValidator(_currency_code)]


def minor_unit_exponent(currency: str) -> int:
    """Digits after the decimal point of `currency`'s major unit (2 for usd, 0 for jpy)."""
    return CURRENCY_EXPONENTS[currency]


class BillingScheme(StrEnum):
    PER_UNIT = "per_unit"
    TIERED = "tiered"


class TiersMode(StrEnum):
    GRADUATED = "graduated"  # each unit at the price of the tier it falls in
    VOLUME = "volume"  # every unit at the price of the tier the total falls in


class Round(StrEnum):
    UP = "up"
    DOWN = "down"


class UsageType(StrEnum):
    LICENSED = "licensed"  # billed by the platform's own invoice lines
    METERED = "metered"  # billed by Stripe from a billing meter's events


def _amount(value: Decimal | None, what: str) -> Decimal | None:
    if value is None:
        return None
    if not value.is_finite() or value < 0:
        raise ValueError(f"{what} must be a finite amount >= 0, got {value}")
    if value >= MAX_AMOUNT:
        raise ValueError(f"{what} {value} is above Stripe's limit of {MAX_AMOUNT} minor units")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_DECIMALS:
        raise ValueError(f"{what} {value} has more than {MAX_DECIMALS} decimal places")
    return value


def _one_of(integer: int | None, decimal: Decimal | None, name: str) -> Decimal | None:
    if integer is not None and decimal is not None:
        raise ValueError(f"only one of {name} and {name}_decimal can be set")
    if integer is not None:
        return _amount(Decimal(integer), name)
    return _amount(decimal, f"{name}_decimal")


class PriceTier(BaseModel):
    """One tier: the units above the previous tier's `up_to` through this one's (None: no upper bound, as
    Stripe's `up_to: "inf"`). `unit_amount[_decimal]` per unit, `flat_amount[_decimal]` once for the tier."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    up_to: Decimal | None = None
    # Optional: the tier's first quantity, stated to make a gap (or an overlap) with the tier before visible.
    after: Decimal | None = None
    unit_amount: int | None = None
    unit_amount_decimal: Decimal | None = None
    flat_amount: int | None = None
    flat_amount_decimal: Decimal | None = None

    @field_validator("up_to", mode="before")
    @classmethod
    def _inf(cls, value: Any) -> Any:
        return None if value == "inf" else value

    @model_validator(mode="after")
    def _amounts(self) -> PriceTier:
        if self.up_to is not None and (not self.up_to.is_finite() or self.up_to <= 0):
            raise ValueError(f"up_to must be a positive quantity or 'inf', got {self.up_to}")
        unit, flat = self.unit(), self.flat()  # each checked (sign, precision) on its own
        if unit is None and flat is None:
            raise ValueError("a tier needs a unit_amount or a flat_amount")
        return self

    def unit(self) -> Decimal | None:
        """The price per unit in minor units (None: the tier has only a flat amount)."""
        return _one_of(self.unit_amount, self.unit_amount_decimal, "unit_amount")

    def flat(self) -> Decimal | None:
        return _one_of(self.flat_amount, self.flat_amount_decimal, "flat_amount")


class TransformQuantity(BaseModel):
    """Package pricing: the quantity is divided by `divide_by` and rounded before the unit amount applies."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    divide_by: int = Field(ge=1)
    round: Round


class UsagePrice(BaseModel):
    """The price of one resource (or of one value of a dimension of it) on a plan, as a Stripe price.
    `included` units each period cost nothing (the plan's included quota); the rest is the overage,
    rated by this price. `stripe_price_id` and `meter` name the Stripe price and billing meter when the
    line is billed through Stripe (a metered price needs a meter)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    currency: Currency
    billing_scheme: BillingScheme = BillingScheme.PER_UNIT
    unit_amount: int | None = None
    unit_amount_decimal: Decimal | None = None
    tiers_mode: TiersMode | None = None
    tiers: tuple[PriceTier, ...] = ()
    transform_quantity: TransformQuantity | None = None
    included: Decimal = Field(default=Decimal(0), ge=0, allow_inf_nan=False)
    usage_type: UsageType = UsageType.LICENSED
    stripe_price_id: str | None = Field(default=None, pattern=r"^price_[A-Za-z0-9_]+$")
    meter: str | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _scheme(self) -> UsagePrice:
        if self.billing_scheme is BillingScheme.PER_UNIT:
            if self.tiers or self.tiers_mode is not None:
                raise ValueError("tiers and tiers_mode need billing_scheme 'tiered'")
            if self.unit() is None:
                raise ValueError("a per_unit price needs unit_amount or unit_amount_decimal")
        else:
            if self.unit_amount is not None or self.unit_amount_decimal is not None:
                raise ValueError("a tiered price sets its amounts in its tiers, not unit_amount")
            if self.tiers_mode is None:
                raise ValueError("a tiered price needs tiers_mode 'graduated' or 'volume'")
            if self.transform_quantity is not None:
                raise ValueError("transform_quantity works with billing_scheme 'per_unit' only (as in Stripe)")
            _check_tiers(self.tiers)
        if self.usage_type is UsageType.METERED and self.meter is None:
            raise ValueError("a metered price needs the meter (the billing meter's event name) it is billed from")
        return self

    def unit(self) -> Decimal | None:
        return _one_of(self.unit_amount, self.unit_amount_decimal, "unit_amount")

    def bounds(self) -> tuple[Decimal | None, ...]:
        """Each tier's upper bound, in order (the last None)."""
        return tuple(t.up_to for t in self.tiers)


def _check_tiers(tiers: tuple[PriceTier, ...]) -> None:
    if len(tiers) < 1:
        raise ValueError("a tiered price needs at least one tier")
    previous = Decimal(0)
    for index, tier in enumerate(tiers):
        last = index == len(tiers) - 1
        if tier.after is not None and tier.after != previous:
            kind = "a gap" if tier.after > previous else "an overlap"
            raise ValueError(
                f"tier {index + 1} starts after {tier.after} but the tier before ends at {previous}: {kind}"
            )
        if tier.up_to is None:
            if not last:
                raise ValueError(f"tier {index + 1} has no upper bound but is not the last tier")
            continue
        if last:
            raise ValueError(f"the last tier ends at {tier.up_to}: a gap above it (make its up_to 'inf')")
        if tier.up_to <= previous:
            raise ValueError(f"tier {index + 1} ends at {tier.up_to}, not above {previous}: tiers out of order")
        previous = tier.up_to


class PlanFee(BaseModel):
    """The plan's recurring fee per period (a licensed Stripe price)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    currency: Currency
    unit_amount: int = Field(ge=0, lt=10**12)
    stripe_price_id: str | None = Field(default=None, pattern=r"^price_[A-Za-z0-9_]+$")


class ResourcePricing(BaseModel):
    """How one resource is priced on a plan: one `price`, and optionally one price per value of a dimension
    (tokens priced per model: `dimension: "model"`, `by_value: {"large": ...}`); a value not listed
    is rated by `price`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    price: UsagePrice
    dimension: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,39}$")
    by_value: dict[str, UsagePrice] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _values(self) -> ResourcePricing:
        if self.by_value and self.dimension is None:
            raise ValueError("by_value needs the dimension its values belong to")
        for value, price in self.by_value.items():
            if price.included:
                raise ValueError(
                    f"the price of {self.dimension}={value!r} includes units: the included quota belongs to the "
                    "resource's price (which value would use it first is not defined)"
                )
        return self

    def for_value(self, value: str | None) -> UsagePrice:
        """The price that rates usage carrying this dimension value."""
        if value is not None and value in self.by_value:
            return self.by_value[value]
        return self.price

    def all_prices(self) -> tuple[UsagePrice, ...]:
        return (self.price, *self.by_value.values())


class PlanPricing(BaseModel):
    """A plan's prices: its fee and the price of each resource, all in the plan's `currency`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    currency: Currency
    fee: PlanFee | None = None
    resources: dict[str, ResourcePricing] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_currency(self) -> PlanPricing:
        if self.fee is not None and self.fee.currency != self.currency:
            raise ValueError(f"the fee is in {self.fee.currency}, the plan's prices in {self.currency}")
        for resource, pricing in self.resources.items():
            for price in pricing.all_prices():
                if price.currency != self.currency:
                    raise ValueError(f"{resource} is priced in {price.currency}, the plan in {self.currency}")
        return self
