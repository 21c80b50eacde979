"""The pure cost and preview assembly: dimension values at their own price, the rest at the resource's,
credit applied up to the subtotal, a plan without prices rated at nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing_platform.catalog.models import load_catalog
from billing_platform.costs.models import LineKind, UsageQuantity
from billing_platform.costs.service import invoice_preview, rate_usage, tenant_cost
from billing_platform.entitlements.models import TenantPlan
from billing_platform.entitlements.views import TenantEntitlements

D = Decimal
START, END = datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)


def _view(plan_id: str) -> TenantEntitlements:
    return TenantEntitlements(
        plan=TenantPlan(
            tenant_id="acme", plan_id=plan_id, status="active", period_start=START, period_end=END, features={}
        ),
        quotas=(),
    )


def test_a_dimension_value_with_its_own_price_is_its_own_line() -> None:
    pricing = load_catalog().plan("pro").pricing
    assert pricing is not None
    usage = [UsageQuantity("tokens", D(3_500_000), by_value=(("large", D(1_000_000)), ("small", D(10))))]
    lines = rate_usage(pricing, usage)
    assert [(line.value, line.rated.quantity, line.rated.amount) for line in lines] == [
        (None, D(2_500_000), D(100)),  # 500,000 past the 2M included, at 0.0002 cents
        ("large", D(1_000_000), D(600)),  # 0.0006 cents each, nothing included
    ]


def test_values_using_more_than_the_total_are_refused() -> None:
    pricing = load_catalog().plan("pro").pricing
    assert pricing is not None
    with pytest.raises(ValueError, match="exceeds the total"):
        rate_usage(pricing, [UsageQuantity("tokens", D(5), by_value=(("large", D(6)),))])


def test_credit_is_applied_up_to_the_subtotal() -> None:
    pricing = load_catalog().plan("pro").pricing
    cost = tenant_cost(_view("pro"), pricing, [UsageQuantity("api_calls", D(102_000))])
    small = invoice_preview(cost, pricing, [], credit_balance=D(1000))
    assert (small.subtotal, small.credit, small.total) == (D(3000), D(1000), D(2000))
    large = invoice_preview(cost, pricing, [], credit_balance=D(10**6))
    assert (large.credit, large.total) == (D(3000), D(0))
    assert large.lines[-1].kind is LineKind.CREDIT


def test_a_plan_without_prices_costs_nothing() -> None:
    cost = tenant_cost(_view("free"), load_catalog().plan("free").pricing, [UsageQuantity("executions", D(50))])
    assert (cost.currency, cost.lines, cost.amount) == (None, (), D(0))
    assert invoice_preview(cost, None, []).total == 0
