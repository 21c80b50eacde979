"""The quantities every domain shares: exact decimals, their bounds and their text form. No I/O, no imports
of the platform: any module may use it.

A quantity the API or the library accepts is a positive, finite `Decimal` of at most `QUANTITY_PLACES`
decimal places and at most `MAX_QUANTITY`.
"""

from __future__ import annotations

from decimal import Decimal

ZERO = Decimal(0)
ONE = Decimal(1)
# One bound for takes and usage alike: a take is metered as a usage record (a reservation's settled
# actuals), and 12 integer + 6 fractional digits keep sums of many records far inside DynamoDB's 38.
MAX_QUANTITY = Decimal(10) ** 12
QUANTITY_PLACES = 6


def decimal_str(value: Decimal | None) -> str | None:
    """A Decimal as plain positional text (`1E+3` -> `1000`, `2.500` -> `2.5`)."""
    if value is None:
        return None
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"
