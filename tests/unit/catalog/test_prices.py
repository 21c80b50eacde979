"""Prices in the catalog: `billing-admin catalog validate` refuses what Stripe would refuse or bill
differently (each case names what is wrong), and accepts the shipped catalog."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from billing_platform.catalog.models import DEFAULT_CATALOG, load_catalog
from billing_platform.cli.catalog import validate_catalog

Mutation = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="module")
def shipped() -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(DEFAULT_CATALOG.read_text(encoding="utf-8"))
    return raw


def _tokens(raw: dict[str, Any]) -> dict[str, Any]:
    price: dict[str, Any] = raw["plans"]["pro"]["pricing"]["resources"]["tokens"]["price"]
    return price


def _calls(raw: dict[str, Any]) -> dict[str, Any]:
    price: dict[str, Any] = raw["plans"]["pro"]["pricing"]["resources"]["api_calls"]["price"]
    return price


def test_the_shipped_catalog_prices_validate_without_errors() -> None:
    report = validate_catalog()
    assert report.ok, report.errors
    pro = load_catalog().plan("pro").pricing
    assert pro is not None
    assert pro.currency == "usd"
    assert pro.resources["tokens"].for_value("large").unit() == Decimal("0.0006")
    assert pro.resources["tokens"].for_value("small") is pro.resources["tokens"].price


def _set(path: tuple[str, ...], value: Any) -> Mutation:
    def apply(raw: dict[str, Any]) -> None:
        target: Any = _tokens(raw)
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return apply


def _drop_currency(raw: dict[str, Any]) -> None:
    del _tokens(raw)["currency"]


def _drop_meter(raw: dict[str, Any]) -> None:
    del _calls(raw)["meter"]


def _fee_in_eur(raw: dict[str, Any]) -> None:
    raw["plans"]["pro"]["pricing"]["fee"]["currency"] = "eur"


def _price_unknown_resource(raw: dict[str, Any]) -> None:
    raw["plans"]["pro"]["pricing"]["resources"]["gpu_hours"] = {"price": {"currency": "usd", "unit_amount": 1}}


CASES: list[tuple[str, Mutation, str]] = [
    ("gap", _set(("tiers", 1, "after"), "12000000"), "a gap"),
    ("gap at the top", _set(("tiers", 1, "up_to"), "20000000"), "a gap above it"),
    (
        "out of order",
        _set(
            ("tiers",),
            [{"up_to": "9", "unit_amount": 2}, {"up_to": "5", "unit_amount": 1}, {"up_to": "inf", "unit_amount": 1}],
        ),
        "out of order",
    ),
    ("negative unit price", _set(("tiers", 0, "unit_amount_decimal"), "-0.0002"), "must be a finite amount >= 0"),
    ("negative flat price", _set(("tiers", 0, "flat_amount"), -5), "must be a finite amount >= 0"),
    ("unknown currency", _set(("currency",), "usx"), "unknown currency 'usx'"),
    ("no currency", _drop_currency, "currency: Field required"),
    ("metered without meter", _drop_meter, "a metered price needs the meter"),
    ("too precise", _set(("tiers", 0, "unit_amount_decimal"), "0.0000000000001"), "more than 12 decimal places"),
    ("two currencies", _fee_in_eur, "the fee is in eur"),
    ("unknown resource", _price_unknown_resource, "prices unknown resource type 'gpu_hours'"),
    ("package with tiers", _set(("transform_quantity",), {"divide_by": 10, "round": "up"}), "'per_unit' only"),
    ("meter of another resource", _set(("meter",), "api_calls"), "is billed from meter 'api_calls'"),
]


@pytest.mark.parametrize(("mutation", "message"), [(m, msg) for _, m, msg in CASES], ids=[c[0] for c in CASES])
def test_validate_names_the_pricing_error(
    tmp_path: Path, shipped: dict[str, Any], mutation: Mutation, message: str
) -> None:
    raw = copy.deepcopy(shipped)
    mutation(raw)
    path = tmp_path / "plans.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    report = validate_catalog(str(path))
    assert not report.ok
    assert any(message in error for error in report.errors), report.errors


def test_a_fee_priced_outside_the_plans_prices_is_an_error(tmp_path: Path, shipped: dict[str, Any]) -> None:
    raw = copy.deepcopy(shipped)
    raw["plans"]["pro"]["pricing"]["fee"]["stripe_price_id"] = "price_elsewhere"
    path = tmp_path / "plans.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    report = validate_catalog(str(path))
    assert any("fee price 'price_elsewhere'" in e for e in report.errors), report.errors
