"""`linear_piece`: where a take's cost is slope x quantity whatever the usage before it; checked against
`cost` on every pair of small usages."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing_platform.catalog.prices import UsagePrice
from billing_platform.rating import cost, linear_piece

D = Decimal

_PRICES = {
    "graduated": {
        "billing_scheme": "tiered",
        "tiers_mode": "graduated",
        "included": "3",
        "tiers": [
            {"up_to": 4, "unit_amount": 10},
            {"up_to": 9, "unit_amount": 7, "flat_amount": 5},
            {"up_to": "inf", "unit_amount": 2},
        ],
    },
    "volume": {
        "billing_scheme": "tiered",
        "tiers_mode": "volume",
        "tiers": [
            {"up_to": 4, "unit_amount": 10},
            {"up_to": 8, "unit_amount": 5, "flat_amount": 20},
            {"up_to": "inf", "unit_amount": 4},
        ],
    },
    "per_unit": {"unit_amount_decimal": "0.125", "included": "2"},
    "package": {"unit_amount": 100, "transform_quantity": {"divide_by": 3, "round": "up"}},
}


@pytest.mark.parametrize("name", sorted(_PRICES))
def test_a_take_inside_a_piece_costs_slope_times_quantity(name: str) -> None:
    price = UsagePrice.model_validate({"currency": "usd", **_PRICES[name]})
    inside = 0
    for before in range(0, 16):
        for quantity in range(1, 8):
            piece = linear_piece(price, D(before), D(quantity))
            if piece is None:
                continue
            inside += 1
            assert cost(price, D(before), D(quantity)).raw == piece.slope * quantity, (before, quantity)
    if name != "package":
        assert inside > 0


def test_a_take_crossing_a_flat_amount_has_no_piece() -> None:
    price = UsagePrice.model_validate({"currency": "usd", **_PRICES["graduated"]})
    # usage 7 = included 3 + tier 1 (4 units): the next unit enters tier 2 and pays its flat amount.
    assert linear_piece(price, D(7), D(1)) is None
    assert linear_piece(price, D(8), D(1)) is not None
