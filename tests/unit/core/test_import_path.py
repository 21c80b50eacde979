"""`from billing_platform import X`: one import path for every name the design document imports, each
loaded on first use, so a Lambda importing one name pays nothing for `stripe` or FastAPI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import billing_platform

DOCUMENTED = [
    "BillingProvider",
    "StripeBillingProvider",
    "MockBillingProvider",
    "EntitlementEnforcer",
    "require_entitlement",
    "get_entitlement_enforcer",
    "check_entitlement_or_raise",
    "UsageTracker",
    "UsageAggregator",
    "BillingProviderError",
    "EntitlementEnforcementError",
]


def loaded_after(statement: str) -> dict[str, bool]:
    """Which heavy packages a fresh interpreter has loaded after `statement`."""
    watched = ("stripe", "fastapi", "starlette", "billing_platform.usage.tracker")
    script = f"import sys, json\n{statement}\nprint(json.dumps({{m: m in sys.modules for m in {watched!r}}}))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    loaded: dict[str, bool] = json.loads(out)
    return loaded


def test_every_documented_name_imports_from_the_package() -> None:
    for name in DOCUMENTED:
        assert name in billing_platform.__all__
        assert getattr(billing_platform, name).__name__ == name
    assert set(DOCUMENTED) <= set(dir(billing_platform))
    with pytest.raises(AttributeError):
        billing_platform.NoSuchName  # noqa: B018


@pytest.mark.parametrize(
    ("statement", "stripe", "tracker"),
    [
        ("import billing_platform", False, False),
        ("from billing_platform import UsageTracker", False, True),
        ("from billing_platform import EntitlementEnforcer, require_entitlement", False, False),
        ("from billing_platform import UsageAggregator, BillingProviderError", False, False),
        ("from billing_platform import MockBillingProvider", False, False),
        ("from billing_platform import StripeBillingProvider", True, False),  # the one that needs it
    ],
)
def test_a_name_loads_only_what_it_needs(statement: str, stripe: bool, tracker: bool) -> None:
    loaded = loaded_after(statement)
    assert loaded == {"stripe": stripe, "fastapi": False, "starlette": False, "billing_platform.usage.tracker": tracker}
