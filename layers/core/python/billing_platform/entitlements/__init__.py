"""Entitlements: per-tenant quotas and features from the plan catalog, consumed atomically.

Public API: `EntitlementEnforcer`, `require_entitlement`, `check_entitlement_or_raise` for code that
guards work with a quota, `EntitlementService` for the API and the subscription webhooks.

Layout, one module per use case behind the thin `EntitlementService` facade (service.py):
- models.py: pure models and quota arithmetic; context.py: what the use cases share (settings,
  repository, catalog, clock, caches); plans.py: the tenant's plan; answers.py: counter -> answer.
- consume.py (hot path), slow_path.py (provision, roll, sharded spread), idempotency.py (keyed
  consumes, replays), views.py (check, read model, listing), release.py, reconcile.py (counters to
  a plan's terms, layout switches), plan_changes.py (apply_plan, suspend, revoke).
- repository.py: `EntitlementRepository`, composed of the data-access pieces in dal/ (items.py:
  keys and codecs; plans.py, counters.py, consume_records.py, layouts.py; table.py: shared plumbing).
- enforcer.py: the library face for other services; cache.py: the TTL cache; schemas.py: the HTTP
  API's request and response bodies.
A new use case gets its own module here (and, for new items, its own dal/ module joined to
`EntitlementRepository`) plus one facade method.
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
