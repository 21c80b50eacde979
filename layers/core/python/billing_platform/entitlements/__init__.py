"""Entitlements: per-tenant quotas and features from the plan catalog, consumed atomically.

Public API: `EntitlementEnforcer`, `require_entitlement`, `check_entitlement_or_raise` for code that
guards work with a quota, `EntitlementService` for the API and the subscription webhooks.
"""

from billing_platform.entitlements.enforcer import (
    EntitlementEnforcer,
    QuotaExceededError,
    check_entitlement_or_raise,
    default_enforcer,
    require_entitlement,
)
from billing_platform.entitlements.models import DenyReason, EntitlementCheck
from billing_platform.entitlements.service import EntitlementService, TenantEntitlements
from billing_platform.errors import EntitlementEnforcementError

__all__ = [
    "DenyReason",
    "EntitlementCheck",
    "EntitlementEnforcementError",
    "EntitlementEnforcer",
    "EntitlementService",
    "QuotaExceededError",
    "TenantEntitlements",
    "check_entitlement_or_raise",
    "default_enforcer",
    "require_entitlement",
]
