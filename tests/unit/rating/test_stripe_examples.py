"""The rating engine against the worked examples of Stripe's documentation, number for number."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing_platform.catalog.prices import UsagePrice
from billing_platform.rating import cost, rate

D = Decimal


def _price(**fields: object) -> UsagePrice:
    return UsagePrice.model_validate({"currency": "usd", **fields})


# Stripe "Tiered pricing": 1-5 at $5, 6-10 at $4, 11-15 at $3, 16-20 at $2, 21+ at $1.
_FIVE_TIERS = [
    {"up_to": 5, "unit_amount": 500},
    {"up_to": 10, "unit_amount": 400},
    {"up_to": 15, "unit_amount": 300},
    {"up_to": 20, "unit_amount": 200},
    {"up_to": "inf", "unit_amount": 100},
]
# Stripe "Set up tiered pricing" (Typographic fonts): 1-5 at 7 USD, 6-10 at 6.50 USD, 11+ at 6 USD.
_FONTS = [
    {"up_to": 5, "unit_amount": 700},
    {"up_to": 10, "unit_amount": 650},
    {"up_to": "inf", "unit_amount": 600},
]


@pytest.mark.parametrize(("quantity", "cents"), [(1, 500), (5, 2500), (6, 2400), (20, 4000), (25, 2500)])
def test_volume_tiers_match_stripes_table(quantity: int, cents: int) -> None:
    price = _price(billing_scheme="tiered", tiers_mode="volume", tiers=_FIVE_TIERS)
    line = rate(price, D(quantity))
    assert line.amount == cents
    assert len(line.tiers) == 1  # volume: the whole quantity in one tier


def test_graduated_six_units_cost_29_dollars_as_stripe_says() -> None:
    price = _price(billing_scheme="tiered", tiers_mode="graduated", tiers=_FIVE_TIERS)
    line = rate(price, D(6))
    assert line.amount == 2900
    assert [(t.tier, t.units, t.raw) for t in line.tiers] == [(1, 5, 2500), (2, 1, 400)]


@pytest.mark.parametrize(("fonts", "cents"), [(1, 700), (5, 3500), (6, 3900), (20, 12000), (25, 15000)])
def test_typographic_volume_pricing(fonts: int, cents: int) -> None:
    assert rate(_price(billing_scheme="tiered", tiers_mode="volume", tiers=_FONTS), D(fonts)).amount == cents


@pytest.mark.parametrize(("fonts", "cents"), [(1, 700), (5, 3500), (6, 4150), (20, 12750), (25, 15750)])
def test_typographic_graduated_pricing(fonts: int, cents: int) -> None:
    assert rate(_price(billing_scheme="tiered", tiers_mode="graduated", tiers=_FONTS), D(fonts)).amount == cents


@pytest.mark.parametrize(("users", "cents"), [(1, 1000), (3, 1000), (5, 1000), (6, 2000), (7, 2000)])
def test_package_of_five_users_rounded_up(users: int, cents: int) -> None:
    # Stripe "Quantity transformation": $10 for every 5 users or portion thereof.
    price = _price(unit_amount=1000, transform_quantity={"divide_by": 5, "round": "up"})
    assert rate(price, D(users)).amount == cents


def test_car_rental_150_minutes_is_three_hours() -> None:
    # Stripe "Transform quantities": 10 USD per hour of minutes reported, rounded up: 150 minutes -> 30 USD.
    price = _price(unit_amount=1000, transform_quantity={"divide_by": 60, "round": "up"})
    line = rate(price, D(150))
    assert (line.billable, line.amount) == (3, 3000)


def test_package_rounded_down_charges_full_packages_only() -> None:
    price = _price(unit_amount=1000, transform_quantity={"divide_by": 5, "round": "down"})
    assert [rate(price, D(n)).amount for n in (4, 5, 9, 10)] == [0, 1000, 1000, 2000]


def test_decimal_unit_amount_rounds_at_the_line() -> None:
    # Stripe "Decimal amounts": 0.05 cents x 30 = 1.5 cents, charged 2 cents.
    line = rate(_price(unit_amount_decimal="0.05"), D(30))
    assert (line.raw, line.amount) == (D("1.50"), 2)


def test_decimal_unit_amount_105_5_cents() -> None:
    # Stripe: unit_amount_decimal 105.5 in USD is 105.5 cents ($1.055).
    assert rate(_price(unit_amount_decimal="105.5"), D(2)).amount == 211
    assert rate(_price(unit_amount_decimal="105.5"), D(1)).amount == 106


def test_zero_decimal_currency_rates_in_whole_yen() -> None:
    price = UsagePrice.model_validate({"currency": "JPY", "unit_amount_decimal": "0.5"})
    assert price.currency == "jpy"
    assert rate(price, D(3)).amount == 2  # 1.5 yen, rounded half up to a whole yen


def test_flat_amounts_graduated_and_volume() -> None:
    tiers = [
        {"up_to": 10, "unit_amount": 100, "flat_amount": 500},
        {"up_to": "inf", "unit_amount": 50, "flat_amount": 2000},
    ]
    graduated = _price(billing_scheme="tiered", tiers_mode="graduated", tiers=tiers)
    volume = _price(billing_scheme="tiered", tiers_mode="volume", tiers=tiers)
    assert rate(graduated, D(0)).amount == 0
    assert rate(graduated, D(10)).amount == 1500
    assert rate(graduated, D(11)).amount == 1500 + 2000 + 50
    assert rate(volume, D(11)).amount == 11 * 50 + 2000


def test_included_units_are_free_then_the_overage_is_rated() -> None:
    price = _price(unit_amount=3, included="100")
    assert rate(price, D(100)).amount == 0
    assert rate(price, D(150)).amount == 150


def test_costs_of_successive_takes_add_up_to_the_line() -> None:
    price = _price(
        billing_scheme="tiered",
        tiers_mode="graduated",
        tiers=[
            {"up_to": 7, "unit_amount_decimal": "0.35"},
            {"up_to": "inf", "unit_amount_decimal": "0.2", "flat_amount": 3},
        ],
    )
    used, total = D(0), D(0)
    for quantity in (D(1), D(3), D("2.5"), D(4), D(9)):
        total += cost(price, used, quantity).amount
        used += quantity
    assert total == rate(price, used).amount


def test_volume_cost_can_be_negative_when_the_line_moves_to_a_cheaper_tier() -> None:
    price = _price(billing_scheme="tiered", tiers_mode="volume", tiers=_FIVE_TIERS)
    assert cost(price, D(20), D(1)).amount == 2100 - 4000
