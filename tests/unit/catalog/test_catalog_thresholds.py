"""Per-plan usage-alert thresholds in the catalog: defaults, what loading refuses, and what
`billing-admin catalog validate` reports (exit 1 on errors, warnings for alerts that can never fire)."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError as PydanticValidationError

from billing_platform.catalog.models import DEFAULT_CATALOG, DEFAULT_THRESHOLDS, load_catalog, parse_catalog
from billing_platform.cli.main import EXIT_OK, EXIT_PROBLEMS, Dependencies, main


@pytest.fixture
def raw() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DEFAULT_CATALOG.read_text())
    return data


def validate(tmp_path: Path, catalog: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    path = tmp_path / "plans.json"
    path.write_text(json.dumps(catalog))
    out = io.StringIO()
    deps = Dependencies()
    deps.stdout, deps.stderr = out, io.StringIO()
    code = main(["--json", "catalog", "validate", "--file", str(path)], deps)
    return code, json.loads(out.getvalue())


def test_plans_default_to_50_80_100_and_the_shipped_ones_set_their_own() -> None:
    catalog = load_catalog()
    assert (Decimal(50), Decimal(80), Decimal(100)) == DEFAULT_THRESHOLDS
    assert catalog.plan("free").thresholds == DEFAULT_THRESHOLDS
    assert catalog.plan("pro").thresholds == (Decimal(50), Decimal(80), Decimal(90), Decimal(100))
    assert catalog.plan("enterprise").thresholds[-1] == Decimal(150)


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        (["80", "50"], "strictly increasing"),
        (["50", "50"], "strictly increasing"),
        (["0"], "not a percentage"),
        (["-5"], "not a percentage"),
        (["1001"], "not a percentage"),
        (["NaN"], "finite number"),
        (["33.333"], "2 decimal places"),
        ([str(n) for n in range(1, 12)], "at most 10"),
    ],
)
def test_bad_thresholds_refuse_the_catalog(raw: dict[str, Any], thresholds: list[str], message: str) -> None:
    raw["plans"]["free"]["thresholds"] = thresholds
    with pytest.raises(PydanticValidationError, match=message):
        parse_catalog(json.dumps(raw))


def test_validate_reports_bad_thresholds_with_where_and_exits_1(tmp_path: Path, raw: dict[str, Any]) -> None:
    raw["plans"]["pro"]["thresholds"] = ["90", "80"]
    code, report = validate(tmp_path, raw)
    assert code == EXIT_PROBLEMS
    assert report["valid"] is False
    assert any(e.startswith("plans.pro") and "strictly increasing" in e for e in report["errors"]), report


def test_validate_warns_when_an_alert_can_never_fire(tmp_path: Path, raw: dict[str, Any]) -> None:
    raw["plans"]["free"]["thresholds"] = ["50", "120"]  # free is hard only: 120 % is never reached
    raw["plans"]["pro"]["thresholds"] = []
    raw["plans"]["enterprise"]["thresholds"] = ["50", "150"]  # enterprise has a soft quota: fine
    code, report = validate(tmp_path, raw)
    assert code == EXIT_OK
    assert report["errors"] == []
    alerts = [w for w in report["warnings"] if "threshold" in w]
    assert len(alerts) == 2
    assert any("'free'" in w and "120%" in w for w in alerts)
    assert any("'pro'" in w and "no thresholds" in w for w in alerts)


def test_the_shipped_catalog_validates_clean(tmp_path: Path, raw: dict[str, Any]) -> None:
    code, report = validate(tmp_path, raw)
    assert (code, report["errors"]) == (EXIT_OK, [])
    assert not [w for w in report["warnings"] if "threshold" in w]
