"""What every entitlement use case works with: settings, the repository, the catalog, the clock and
the per-container caches. `EntitlementService` builds one per container and hands it to each use case."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from billing_platform.catalog.models import Catalog
from billing_platform.entitlements.cache import TTLCache
from billing_platform.entitlements.models import QuotaCounter, TenantPlan
from billing_platform.entitlements.repository import EntitlementRepository, counter_pk
from billing_platform.grants.repository import GrantRepository
from billing_platform.settings import Settings

DEFAULT_CACHE_TTL_SECONDS = 60.0
# Slow-path rounds before giving up with a retryable 429 rather than a denial that might be wrong.
MAX_ROUNDS = 24
WINDOW_MARKER_TTL_SECONDS = 86_400.0


@dataclass
class EntitlementContext:
    """Shared, thread-safe state of the use cases. Plans and counter layouts are cached for
    `cache_ttl_seconds`; remaining quota never is."""

    settings: Settings
    repo: EntitlementRepository
    catalog: Catalog
    clock: Callable[[], datetime]
    rng: random.Random
    cache_ttl_seconds: float = DEFAULT_CACHE_TTL_SECONDS
    grants: GrantRepository | None = None  # the tenant's grants (default: the billing table's)
    plans: TTLCache[str, TenantPlan] = field(init=False)
    layouts: TTLCache[tuple[str, str], int] = field(init=False)  # (tenant, resource) -> counter shards
    # Counter pk -> the state this container last saw it in. Never an answer by itself: an idempotent
    # consume pins it in its condition (idempotency), so a stale entry only costs a retry.
    counters: TTLCache[str, QuotaCounter] = field(init=False)
    tenant_grants: GrantRepository = field(init=False)  # `grants`, or the billing table's
    # (tenant, entity, resource) -> the entities of that chain limiting the resource, nearest first, each
    # with the window marker its limit item had (entitlements.entity_take). A limit added to a level not
    # cached here counts from the next read (within the TTL); any other change fails a take's condition.
    entity_chains: TTLCache[tuple[str, str, str], tuple[tuple[str, str], ...]] = field(init=False)
    # Counter pk -> the window marker its item carries, as last seen ("": none). Kept long: a stale entry
    # makes a take's condition fail once, and the failure brings the item's marker back.
    windows: TTLCache[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.plans = TTLCache(self.cache_ttl_seconds)
        self.layouts = TTLCache(self.cache_ttl_seconds)
        self.counters = TTLCache(self.cache_ttl_seconds)
        self.entity_chains = TTLCache(self.cache_ttl_seconds)
        self.windows = TTLCache(WINDOW_MARKER_TTL_SECONDS)
        # The injected client only: `repo.client` would create the container's client at import (cold start).
        self.tenant_grants = self.grants or GrantRepository(self.settings, self.repo.injected_client)

    def saw(self, counter: QuotaCounter) -> None:
        """Keep the state a counter was just seen in (a take's own answer) for a keyed take to pin."""
        self.counters.put(counter_pk(counter.tenant_id, counter.resource_type, counter.shard, counter.shards), counter)

    @property
    def enforcing(self) -> bool:
        return self.settings.entitlement_check_enabled
