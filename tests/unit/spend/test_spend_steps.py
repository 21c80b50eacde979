"""The spend's pure pieces: what a hard cap still lets a take add (`affordable`), and the condition a
give-back (negative quantity) is written with: the usage before it and after it both inside the priced
piece, without arithmetic on the attribute."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billing_platform.catalog.prices import UsagePrice
from billing_platform.rating import rate
from billing_platform.spend.models import CapKind, SpendCap, SpendState, affordable, budget_left, spend_step
from billing_platform.spend.repository import spend_update

D = Decimal
# Free up to 100, then graduated on the billable units: 3 each to 200, 2 each plus a flat 50 to 500, 1 above.
GRADUATED = UsagePrice.model_validate(
    {
        "currency": "usd",
        "included": "100",
        "billing_scheme": "tiered",
        "tiers_mode": "graduated",
        "tiers": [
            {"up_to": "200", "unit_amount": 3},
            {"up_to": "500", "unit_amount": 2, "flat_amount": 50},
            {"up_to": "inf", "unit_amount": 1},
        ],
    }
)
_PERIOD_END = datetime(2027, 1, 1, tzinfo=UTC)
CAP = SpendCap("acme", "usd", D(800), CapKind.HARD, resources={"tokens": D(700)})


def test_affordable_is_the_largest_quantity_whose_cost_fits_across_a_flat_amount() -> None:
    # From 150: 150 units to 300 cost 450, crossing 300 the flat 50, then 2 each: a budget of 650 buys 225.
    assert affordable(GRADUATED, D(150), D(300), D(650)) == 225
    assert rate(GRADUATED, D(375)).raw - rate(GRADUATED, D(150)).raw == 650
    assert affordable(GRADUATED, D(150), D(300), D(449)) == 149  # 149 x 3 = 447; one more is 450
    assert affordable(GRADUATED, D(150), D(10), D(10_000)) == 10  # all of it fits
    assert affordable(GRADUATED, D(150), D("1.5"), D("3")) == D("1.5") * 682 / 1024  # 1/1024ths of a fraction


def test_the_budget_left_is_the_tighter_of_the_period_and_the_resource() -> None:
    state = SpendState(used={"tokens": D(300)}, spent={"tokens": D(600)}, total=D(650))
    assert budget_left(CAP, "tokens", state) == 100  # the resource's 700 - 600 < the period's 800 - 650
    assert budget_left(CAP, "gpu", state) == 150


def _condition(used_seen: Decimal, quantity: Decimal) -> tuple[str, dict[str, Any]]:
    step = spend_step(GRADUATED, used_seen, quantity)
    update = spend_update("t", {"pk": {"S": "p"}}, "tokens", step, CAP, _PERIOD_END)["Update"]
    return update["ConditionExpression"], update["ExpressionAttributeValues"]


def test_a_give_back_inside_a_piece_is_conditioned_on_both_ends_lying_in_it() -> None:
    # 250 -> 220 stays in the first paid tier (usage 100..300): used - 30 >= 100 and used <= 300.
    condition, values = _condition(D(250), D(-30))
    assert condition == "(#u >= :lo AND #u <= :hiq)"
    assert (values[":lo"], values[":hiq"], values[":d"]) == ({"N": "130"}, {"N": "300"}, {"N": "-90"})
    assert ":capd" not in values  # a give-back is never refused by the cap


def test_a_give_back_across_a_flat_amount_is_conditioned_on_the_exact_usage() -> None:
    condition, values = _condition(D(320), D(-40))  # 690 -> 540: back below 300, the flat 50 goes too
    assert condition == "#u = :seen"
    assert (values[":seen"], values[":d"]) == ({"N": "320"}, {"N": "-150"})
