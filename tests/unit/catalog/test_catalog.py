"""The plan catalog: the shipped file is valid, look-ups name what they do not know, and a broken
catalog is refused when loaded rather than at the first webhook."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError as PydanticValidationError

from billing_platform.catalog import QuotaPolicy, load_catalog
from billing_platform.catalog.models import DEFAULT_CATALOG, parse_catalog
from billing_platform.errors import CatalogError


@pytest.fixture
def raw() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DEFAULT_CATALOG.read_text())
    return data


def test_shipped_catalog_has_free_pro_enterprise_with_decimal_quotas() -> None:
    catalog = load_catalog()
    assert set(catalog.plans) == {"free", "pro", "enterprise"}
    assert catalog.default.id == "free"
    assert [p.id for p in sorted(catalog.plans.values(), key=lambda p: p.rank)] == ["free", "pro", "enterprise"]
    pro = catalog.plan_for_price("price_pro_yearly")
    assert pro.id == "pro"
    tokens = pro.quota("tokens")
    assert tokens is not None
    assert (tokens.limit, tokens.policy, tokens.metered) == (Decimal("2000000"), QuotaPolicy.SOFT, True)
    assert isinstance(tokens.limit, Decimal)
    executions = catalog.plan("enterprise").quota("executions")
    assert executions is not None
    assert (executions.limit, executions.policy) == (None, QuotaPolicy.UNLIMITED)
    assert catalog.plan("enterprise").has_feature("sso") is True
    assert catalog.plan("free").has_feature("sso") is False
    assert catalog.plan("free").has_feature("no_such_feature") is False
    assert catalog.plan("pro").past_due_grace_days == 7


def test_unknown_price_is_an_error_that_says_so() -> None:
    with pytest.raises(CatalogError) as caught:
        load_catalog().plan_for_price("price_gold_monthly")
    assert caught.value.code == "unknown_price"
    assert caught.value.http_status == 422
    assert "price_gold_monthly" in caught.value.message
    assert load_catalog().version in caught.value.message


def test_unknown_plan_and_resource_type_are_errors() -> None:
    catalog = load_catalog()
    with pytest.raises(CatalogError, match="gold"):
        catalog.plan("gold")
    with pytest.raises(CatalogError) as caught:
        catalog.require_resource_type("gpu_hours")
    assert caught.value.code == "unknown_resource_type"
    assert "executions" in caught.value.message


def test_a_catalog_file_elsewhere_is_loaded(tmp_path: Path, raw: dict[str, Any]) -> None:
    raw["version"] = "custom-1"
    path = tmp_path / "plans.json"
    path.write_text(json.dumps(raw))
    assert load_catalog(str(path)).version == "custom-1"


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        pytest.param(lambda c: c.update(default_plan="gold"), "default_plan", id="default-missing"),
        pytest.param(
            lambda c: c["plans"]["pro"]["prices"].append("price_free_monthly"), "price_free_monthly", id="dup-price"
        ),
        pytest.param(
            lambda c: c["plans"]["pro"]["quotas"].update(gpu={"limit": "1", "policy": "hard"}), "gpu", id="resource"
        ),
        pytest.param(
            lambda c: c["plans"]["pro"]["quotas"].update(executions={"limit": "5", "policy": "unlimited"}),
            "unlimited",
            id="unlimited-with-limit",
        ),
        pytest.param(
            lambda c: c["plans"]["pro"]["quotas"].update(executions={"limit": None, "policy": "hard"}),
            "needs a limit",
            id="hard-without-limit",
        ),
        pytest.param(
            lambda c: c["plans"]["pro"]["quotas"].update(executions={"limit": "-1", "policy": "hard"}),
            "greater than or equal",
            id="negative-limit",
        ),
    ],
)
def test_inconsistent_catalogs_are_refused(raw: dict[str, Any], mutation: Any, message: str) -> None:
    broken = copy.deepcopy(raw)
    mutation(broken)
    with pytest.raises(PydanticValidationError, match=message):
        parse_catalog(json.dumps(broken))
