"""Rating: the one engine that prices usage (the take's spend, the running cost, the invoice preview).

`models` holds the rated values (a line, its tiers, the cost of one take); `service` rates a quantity under
a catalog price, exactly in Decimal, rounding each line to the currency's minor unit as Stripe does. Pure:
no I/O, so it has no repository.
"""

from billing_platform.rating.models import Cost, LinearPiece, RatedLine, TierCharge
from billing_platform.rating.service import cost, linear_piece, rate, raw_amount, round_minor

__all__ = [
    "Cost",
    "LinearPiece",
    "RatedLine",
    "TierCharge",
    "cost",
    "linear_piece",
    "rate",
    "raw_amount",
    "round_minor",
]
