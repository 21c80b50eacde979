"""Grant arithmetic and catalog top-ups: the draw order, expiry at its instant, denial only when the quota
and the live grants together are short, top-up line parsing, and what the catalog validator refuses."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from billing_platform.catalog.models import DEFAULT_CATALOG, parse_catalog
from billing_platform.cli.catalog import validate_catalog
from billing_platform.grants.models import (
    Grant,
    GrantSource,
    GrantState,
    draw_order,
    grant_id_for_source,
    live_balance,
    plan_draw,
)
from billing_platform.grants.topups import line_price_id, topup_lines

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def grant(
    gid: str,
    remaining: str,
    *,
    priority: int = 50,
    expires_in: timedelta | None = None,
    created: datetime = NOW - timedelta(days=1),
    state: GrantState = GrantState.ACTIVE,
) -> Grant:
    amount = Decimal(remaining)
    return Grant(
        tenant_id="t",
        resource_type="executions",
        grant_id=gid,
        amount=amount,
        remaining=amount,
        used=Decimal(0),
        priority=priority,
        valid_until=NOW + expires_in if expires_in is not None else None,
        state=state,
        source=GrantSource.OPERATOR,
        source_id=gid,
        created_at=created,
        created_by="operator:test",
    )


def test_draw_order_is_priority_then_earliest_expiry_then_oldest() -> None:
    never = grant("never", "5", priority=10)
    late = grant("late", "5", priority=10, expires_in=timedelta(days=9))
    soon = grant("soon", "5", priority=10, expires_in=timedelta(days=1))
    low = grant("low", "5", priority=90, expires_in=timedelta(hours=1))
    older = grant("older", "5", priority=10, expires_in=timedelta(days=1), created=NOW - timedelta(days=5))
    assert [g.grant_id for g in sorted([never, late, soon, low, older], key=draw_order)] == [
        "older",
        "soon",
        "late",
        "never",
        "low",
    ]


def test_the_quota_pays_first_then_each_grant_is_emptied_in_order() -> None:
    a, b, c = grant("a", "3", priority=1), grant("b", "4", priority=2), grant("c", "10", priority=3)
    plan = plan_draw(Decimal(2), [c, b, a], Decimal(8), NOW)
    assert plan is not None
    assert plan.from_quota == Decimal(2)
    assert [(g.grant_id, q) for g, q in plan.from_grants] == [("a", Decimal(3)), ("b", Decimal(3))]


def test_a_denial_only_when_quota_and_live_grants_together_are_short() -> None:
    grants = [grant("a", "3"), grant("b", "4", expires_in=timedelta(seconds=1))]
    assert plan_draw(Decimal(1), grants, Decimal(8), NOW) is not None
    assert plan_draw(Decimal(1), grants, Decimal("8.000001"), NOW) is None
    assert plan_draw(Decimal(-5), grants, Decimal(7), NOW) is not None  # an overdrawn quota pays nothing


def test_an_expired_grant_stops_counting_at_its_expiry_instant() -> None:
    at_expiry = grant("x", "10", expires_in=timedelta(0))
    just_before = grant("y", "10", expires_in=timedelta(seconds=1))
    assert not at_expiry.live(NOW)
    assert at_expiry.status(NOW) == "expired"
    assert just_before.live(NOW)
    assert live_balance([at_expiry, just_before], NOW) == Decimal(10)
    assert plan_draw(Decimal(0), [at_expiry], Decimal(1), NOW) is None


def test_voided_and_used_up_grants_pay_nothing() -> None:
    voided = grant("v", "10", state=GrantState.VOIDED)
    empty = Grant(**{**grant("e", "10").__dict__, "remaining": Decimal(0), "used": Decimal(10)})
    assert (voided.status(NOW), empty.status(NOW)) == ("voided", "depleted")
    assert plan_draw(Decimal(0), [voided, empty], Decimal(1), NOW) is None


def test_a_stripe_line_always_maps_to_the_same_grant_id() -> None:
    first = grant_id_for_source("in_1:il_1")
    assert first == grant_id_for_source("in_1:il_1")
    assert first != grant_id_for_source("in_1:il_2")
    assert first.startswith("grt_")
    assert len(first) == 20


def test_topup_lines_read_both_invoice_and_checkout_line_shapes() -> None:
    catalog = parse_catalog(DEFAULT_CATALOG.read_text())
    invoice_line = {"id": "il_1", "quantity": 2, "pricing": {"price_details": {"price": "price_topup_tokens_1m"}}}
    checkout_line = {"id": "li_1", "quantity": 1, "price": {"id": "price_topup_executions_1k"}}
    plan_line = {"id": "il_2", "quantity": 1, "price": "price_pro_monthly"}
    assert line_price_id(invoice_line) == "price_topup_tokens_1m"
    lines = topup_lines([invoice_line, checkout_line, plan_line], catalog)
    assert [(x.line_id, x.price_id, x.quantity) for x in lines] == [
        ("il_1", "price_topup_tokens_1m", Decimal(2)),
        ("li_1", "price_topup_executions_1k", Decimal(1)),
    ]


def _catalog_with(topups: dict[str, object]) -> dict[str, object]:
    data: dict[str, object] = json.loads(DEFAULT_CATALOG.read_text())
    data["topups"] = topups
    return data


@pytest.mark.parametrize(
    ("topup", "message"),
    [
        ({"name": "x", "resource_type": "gold", "amount": "5"}, "unknown resource type"),
        ({"name": "x", "resource_type": "executions", "amount": "0"}, "greater than 0"),
        ({"name": "x", "resource_type": "executions", "amount": "1.0000001"}, "decimal places"),
        ({"name": "x", "resource_type": "executions", "amount": "5", "priority": 101}, "less than or equal"),
        ({"name": "x", "resource_type": "executions", "amount": "5", "expires_after_days": 0}, "greater than"),
    ],
)
def test_the_catalog_refuses_bad_topups(topup: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_catalog(json.dumps(_catalog_with({"price_x": topup})))


def test_a_price_cannot_be_both_a_plan_and_a_topup() -> None:
    topup = {"name": "x", "resource_type": "executions", "amount": "5"}
    with pytest.raises(ValidationError, match="both a top-up and a price of plan"):
        parse_catalog(json.dumps(_catalog_with({"price_pro_monthly": topup})))


def test_the_validator_reports_topups_that_would_never_be_drawn(tmp_path: Path) -> None:
    data = _catalog_with(
        {
            "price_api_calls": {"name": "a", "resource_type": "api_calls", "amount": "5", "expires_after_days": 30},
            "not_a_price": {"name": "b", "resource_type": "executions", "amount": "5", "expires_after_days": 30},
            "price_forever": {"name": "c", "resource_type": "storage_mb", "amount": "5"},
        }
    )
    # api_calls: hard only on free in the shipped catalog; make it soft there too -> never drawn.
    data["plans"]["free"]["quotas"]["api_calls"]["policy"] = "soft"  # type: ignore[index]
    path = tmp_path / "plans.json"
    path.write_text(json.dumps(data))

    report = validate_catalog(str(path))

    assert not report.ok
    assert any("'price_api_calls'" in e and "never be drawn" in e for e in report.errors), report.errors
    assert any("'not_a_price' is not a Stripe price id" in e for e in report.errors), report.errors
    assert any("'price_forever' never expires" in w for w in report.warnings), report.warnings


def test_the_shipped_catalog_and_its_topups_are_valid() -> None:
    report = validate_catalog()
    assert report.ok, report.errors
    assert parse_catalog(DEFAULT_CATALOG.read_text()).topup_for_price("price_topup_tokens_1m") is not None
