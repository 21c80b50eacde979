"""Serverless billing for SaaS on AWS: the shared library deployed as a Lambda layer.

One import path for the library's public names: ``from billing_platform import EntitlementEnforcer``.
Names are loaded on first use (module `__getattr__`), so a Lambda that imports one of them pays only for
that one's modules: importing `UsageTracker` never loads `stripe`, and nothing here ever loads FastAPI
(it is only used if the application imported it; see `check_entitlement_or_raise`).

Each of the four library objects has an async face (the class named here, ``await obj.method(...)``)
and a blocking face with the same methods (``obj.sync.method(...)``) for Lambda handlers; see
`billing_platform.enforcer` for the convention.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from billing_platform import logs
from billing_platform.deferred_imports import defer_package_inits

# Before any Powertools import of the layer: its event handler and data class packages then load only
# the resolvers and event classes in use (billing_platform.deferred_imports).
defer_package_inits()
logs.configure()  # silent outside Lambda unless the host configures logging; structured inside (logs.py)
if logs.in_lambda():
    import billing_platform.observability  # noqa: F401  (builds the Logger and routes the records to it)

if TYPE_CHECKING:
    from billing_platform.enforcer import (
        EntitlementEnforcer,
        SyncEntitlementEnforcer,
        check_entitlement_or_raise,
        get_entitlement_enforcer,
        require_entitlement,
    )
    from billing_platform.entitlements.models import EntitlementCheck
    from billing_platform.errors import (
        BillingError,
        BillingProviderError,
        EntitlementEnforcementError,
        QuotaExceededError,
    )
    from billing_platform.providers.base import BillingProvider, SyncBillingProvider
    from billing_platform.providers.mock import MockBillingProvider
    from billing_platform.providers.stripe import StripeBillingProvider
    from billing_platform.usage.queries import SyncUsageAggregator, UsageAggregator
    from billing_platform.usage.tracker import SyncUsageTracker, UsageTracker

# name -> the module that defines it (imported when the name is first asked for).
_LAZY = {
    "BillingProvider": "billing_platform.providers.base",
    "SyncBillingProvider": "billing_platform.providers.base",
    "StripeBillingProvider": "billing_platform.providers.stripe",
    "MockBillingProvider": "billing_platform.providers.mock",
    "EntitlementEnforcer": "billing_platform.enforcer",
    "SyncEntitlementEnforcer": "billing_platform.enforcer",
    "QuotaExceededError": "billing_platform.errors",
    "require_entitlement": "billing_platform.enforcer",
    "get_entitlement_enforcer": "billing_platform.enforcer",
    "check_entitlement_or_raise": "billing_platform.enforcer",
    "EntitlementCheck": "billing_platform.entitlements.models",
    "UsageTracker": "billing_platform.usage.tracker",
    "SyncUsageTracker": "billing_platform.usage.tracker",
    "UsageAggregator": "billing_platform.usage.queries",
    "SyncUsageAggregator": "billing_platform.usage.queries",
    "BillingError": "billing_platform.errors",
    "BillingProviderError": "billing_platform.errors",
    "EntitlementEnforcementError": "billing_platform.errors",
}

__all__ = [
    "BillingError",
    "BillingProvider",
    "BillingProviderError",
    "EntitlementCheck",
    "EntitlementEnforcementError",
    "EntitlementEnforcer",
    "MockBillingProvider",
    "QuotaExceededError",
    "StripeBillingProvider",
    "SyncBillingProvider",
    "SyncEntitlementEnforcer",
    "SyncUsageAggregator",
    "SyncUsageTracker",
    "UsageAggregator",
    "UsageTracker",
    "check_entitlement_or_raise",
    "get_entitlement_enforcer",
    "require_entitlement",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
