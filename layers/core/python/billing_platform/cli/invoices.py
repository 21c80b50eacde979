"""`billing-admin invoice compare TENANT`: the platform's invoice preview beside Stripe's own preview of
the customer's next invoice (test mode keys only), line by Stripe price, with every difference spelled out.

Lines match by Stripe price id (`pricing.price_details.price` on Stripe's lines, `stripe_price_id` in the
catalog); amounts are compared in minor units, the line amounts (before credit) and the total after it.
Lines the platform rates without a Stripe price are listed as not billed through Stripe, not as differences.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from billing_platform.costs.models import InvoicePreview, LineKind
from billing_platform.errors import ValidationError


@dataclass
class PreviewComparison:
    tenant_id: str
    customer_id: str
    currency: str | None
    stripe_currency: str | None
    ours: dict[str, int] = field(default_factory=dict)  # price id -> minor units
    theirs: dict[str, int] = field(default_factory=dict)
    our_total: int = 0
    stripe_total: int = 0
    unpriced: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict[str, object]:
        return {
            "tenant_id": self.tenant_id,
            "customer_id": self.customer_id,
            "in_sync": self.in_sync,
            "currency": self.currency,
            "our_total": self.our_total,
            "stripe_total": self.stripe_total,
            "lines": {
                price: {"ours": self.ours.get(price), "stripe": self.theirs.get(price)}
                for price in sorted(set(self.ours) | set(self.theirs))
            },
            "not_billed_through_stripe": self.unpriced,
            "differences": self.differences,
        }


def require_test_key(key: str | None) -> str:
    """The comparison reads Stripe with a test-mode secret key only (`sk_test_` / `rk_test_`)."""
    if not key:
        raise ValidationError("STRIPE_SECRET_KEY is not set: the comparison needs a Stripe test-mode key")
    if not key.startswith(("sk_test_", "rk_test_")):
        raise ValidationError("the comparison runs with a Stripe test-mode key only (sk_test_...)")
    return key


def _stripe_price(line: dict[str, Any]) -> str | None:
    pricing = line.get("pricing") or {}
    details = pricing.get("price_details") or {}
    price = details.get("price")
    if isinstance(price, dict):
        return str(price.get("id"))
    return str(price) if price else None


def compare(tenant_id: str, customer_id: str, preview: InvoicePreview, upcoming: dict[str, Any]) -> PreviewComparison:
    """Every difference between the two previews, in words (empty: in sync)."""
    result = PreviewComparison(tenant_id, customer_id, preview.currency, upcoming.get("currency"))
    ours: dict[str, Decimal] = defaultdict(Decimal)
    for line in preview.lines:
        if line.kind in (LineKind.FEE, LineKind.USAGE):
            if line.stripe_price_id is None:
                result.unpriced.append(line.description)
            else:
                ours[line.stripe_price_id] += line.amount
    theirs: dict[str, int] = defaultdict(int)
    lines = (upcoming.get("lines") or {}).get("data") or []
    for line in lines:
        price = _stripe_price(line) or f"(no price) {line.get('description')}"
        theirs[price] += int(line.get("amount") or 0)
    result.ours = {price: int(amount) for price, amount in ours.items()}
    result.theirs = dict(theirs)
    result.our_total = int(preview.total)
    result.stripe_total = int(upcoming.get("total") or 0)
    if preview.currency is not None and result.stripe_currency != preview.currency:
        result.differences.append(f"currency: ours {preview.currency}, Stripe's {result.stripe_currency}")
    for price in sorted(set(result.ours) | set(result.theirs)):
        mine, stripe = result.ours.get(price), result.theirs.get(price)
        if (mine or 0) == (stripe or 0) == 0:
            continue  # a line of nothing on one side, absent on the other: the same money
        if mine is None:
            result.differences.append(f"{price}: Stripe bills {stripe}, the platform has no such line")
        elif stripe is None:
            result.differences.append(f"{price}: the platform bills {mine}, Stripe has no such line")
        elif mine != stripe:
            result.differences.append(f"{price}: ours {mine}, Stripe's {stripe} (difference {stripe - mine:+d})")
    if result.our_total != result.stripe_total:
        delta = result.stripe_total - result.our_total
        result.differences.append(f"total: ours {result.our_total}, Stripe's {result.stripe_total} ({delta:+d})")
    return result
