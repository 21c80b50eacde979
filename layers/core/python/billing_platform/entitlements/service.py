"""Entitlement use cases: check, consume, release, list, and the plan effects the Stripe webhooks drive.

Hot path (`consume` without an idempotency key, layout known): exactly one conditional UpdateItem on
the counter. Everything else happens only when that update's condition fails, using the item
DynamoDB returns with the failure (ReturnValuesOnConditionCheckFailure=ALL_OLD):

- no item: the quota was never provisioned; create it from the tenant's plan (or the catalog's
  default plan for a tenant without a subscription) and retry;
- RETIRED: the layout changed (its `current_shards` says to what) or the resource left the plan;
- SUSPENDED: denied (past due beyond grace / unpaid);
- period over: roll the counter into the period containing now, conditioned on the period end seen,
  so of several racing resets exactly one applies; retry;
- otherwise the quota is exhausted: denied with the exact numbers of the item.

Sharded quotas (plan `counter_shards` > 1) split the limit over N items with their own partition keys.
A take goes to one random shard (one request); when that shard cannot cover it, all shards are read
and the take goes to a shard that can, or is spread over several in one transaction. A denial is
only ever given when the shards read together have less than the quantity left.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import Enum

from billing_platform.catalog.models import Catalog, QuotaPolicy, ResourceQuota, load_catalog
from billing_platform.entitlements.cache import TTLCache
from billing_platform.entitlements.models import (
    ZERO,
    CounterState,
    DenyReason,
    EntitlementCheck,
    PlanStatus,
    QuotaCounter,
    TenantPlan,
    advance_period,
    calendar_month,
    check_from_counter,
    combine_shards,
    decimal_str,
    same_period,
    split_limit,
    spread_used,
    validate_quantity,
)
from billing_platform.entitlements.repository import (
    ConsumeRecord,
    EntitlementRepository,
    Item,
    KeyedTake,
    counter_from_item,
    counter_key,
    utc_now,
)
from billing_platform.errors import NotFoundError, RateLimitedError, UnprocessableError
from billing_platform.observability import logger
from billing_platform.settings import Settings, get_settings

DEFAULT_CACHE_TTL_SECONDS = 60.0
# Slow-path rounds before giving up with a retryable 429 rather than a denial that might be wrong.
MAX_ROUNDS = 24
REPLAY_WAIT_SECONDS = 0.02
ONE = Decimal(1)


class _Mode(Enum):
    RENEW = "renew"  # apply_plan: a different (later) period starts afresh
    KEEP = "keep"  # revoke: usage of the live period carries over (no free refill by cancelling)


@dataclass(frozen=True)
class QuotaView:
    """One quota of a tenant as `GET /v1/tenants/{id}/entitlements` shows it."""

    resource_type: str
    policy: QuotaPolicy | None
    limit: Decimal | None
    used: Decimal
    remaining: Decimal | None
    overage: Decimal
    period_start: datetime | None
    period_end: datetime | None
    state: str
    shards: int

    def to_dict(self) -> dict[str, object]:
        return {
            "resource_type": self.resource_type,
            "policy": self.policy.value if self.policy else None,
            "limit": decimal_str(self.limit),
            "used": decimal_str(self.used),
            "remaining": decimal_str(self.remaining),
            "overage": decimal_str(self.overage),
            "period_start": self.period_start.isoformat() if self.period_start else None,
            "period_end": self.period_end.isoformat() if self.period_end else None,
            "state": self.state,
            "shards": self.shards,
        }


@dataclass(frozen=True)
class TenantEntitlements:
    """Every quota and feature of a tenant."""

    plan: TenantPlan
    quotas: tuple[QuotaView, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "tenant_id": self.plan.tenant_id,
            "plan_id": self.plan.plan_id,
            "status": self.plan.status,
            "subscribed": self.plan.stored,
            "period_start": self.plan.period_start.isoformat(),
            "period_end": self.plan.period_end.isoformat(),
            "features": {name: self.plan.feature(name) for name in sorted(self.plan.features)},
            "quotas": [q.to_dict() for q in self.quotas],
        }


class EntitlementService:
    """Quota and feature decisions for tenants. Thread-safe; one instance per container.

    Promises: a hard quota never grants more than its limit, whatever the concurrency; a retried
    consume with the same idempotency key consumes once and answers the same; a release never takes
    `used` below zero; a period is never granted twice. Plan and layout look-ups are cached for
    `cache_ttl_seconds`; remaining quota never is."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        repository: EntitlementRepository | None = None,
        catalog: Catalog | None = None,
        clock: Callable[[], datetime] = utc_now,
        cache_ttl_seconds: float = DEFAULT_CACHE_TTL_SECONDS,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings or get_settings()
        self._repo = repository or EntitlementRepository(self._settings)
        self._catalog = catalog or load_catalog(self._settings.plan_catalog_path)
        self._clock = clock
        self._plans: TTLCache[str, TenantPlan] = TTLCache(cache_ttl_seconds)
        self._layouts: TTLCache[tuple[str, str], int] = TTLCache(cache_ttl_seconds)
        self._rng = rng or random.Random()

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    @property
    def enforcing(self) -> bool:
        return self._settings.entitlement_check_enabled

    # --- validation ----------------------------------------------------------------------------

    def validate(self, resource_type: str, quantity: Decimal | None) -> None:
        """422 for an unknown resource type or an unacceptable quantity, before any I/O."""
        self._catalog.require_resource_type(resource_type)
        if quantity is not None:
            try:
                validate_quantity(quantity)
            except ValueError as exc:
                raise UnprocessableError(f"quantity: {exc}", code="invalid_quantity") from None

    # --- plans ---------------------------------------------------------------------------------

    def plan_for(self, tenant_id: str, *, fresh: bool = False) -> TenantPlan:
        """The tenant's plan (cached), or the catalog default plan in calendar months for a known
        tenant without a subscription. NotFoundError for a tenant the platform does not know."""
        if not fresh:
            cached = self._plans.get(tenant_id)
            if cached is not None:
                return cached
        plan = self._repo.get_plan(tenant_id)
        if plan is None:
            if not self._repo.tenant_known(tenant_id):
                raise NotFoundError(f"unknown tenant {tenant_id!r}", code="unknown_tenant")
            default = self._catalog.default
            start, end = calendar_month(self._clock())
            plan = TenantPlan(
                tenant_id=tenant_id,
                plan_id=default.id,
                status=PlanStatus.ACTIVE.value,
                period_start=start,
                period_end=end,
                features=dict(default.features),
                counter_shards=default.counter_shards,
                stored=False,
            )
        self._plans.put(tenant_id, plan)
        return plan

    def has_feature(self, tenant_id: str, feature: str) -> bool:
        """Whether the tenant's plan has `feature` (False while suspended); cached with the plan."""
        return self.plan_for(tenant_id).feature(feature)

    # --- consume -------------------------------------------------------------------------------

    def consume(
        self,
        tenant_id: str,
        resource_type: str,
        quantity: Decimal = ONE,
        *,
        idempotency_key: str | None = None,
    ) -> EntitlementCheck:
        """Check and record `quantity` atomically. Denied checks consume nothing. With an
        idempotency key every retry gets the first answer, a denial included."""
        self.validate(resource_type, quantity)
        check = self._consume(tenant_id, resource_type, quantity, idempotency_key)
        if idempotency_key is None or check.allowed or check.replayed:
            return check
        denial = replace(check, idempotency_key=idempotency_key)
        record = replace(
            self._record(tenant_id, resource_type, quantity, self._clock(), (), 0, idempotency_key), answer=denial
        )
        if not self._repo.put_consume_record(record):
            existing = self._repo.get_consume_record(tenant_id, idempotency_key)
            if existing is not None:
                return self._replay(existing, resource_type, quantity)
        return denial

    def _consume(
        self, tenant_id: str, resource_type: str, quantity: Decimal, idempotency_key: str | None
    ) -> EntitlementCheck:
        enforce = self.enforcing
        shards = self._layouts.get((tenant_id, resource_type)) or 1
        for _round in range(MAX_ROUNDS):
            now = self._clock()
            if idempotency_key is not None:
                record = self._repo.get_consume_record(tenant_id, idempotency_key) if _round else None
                if record is not None:
                    return self._replay(record, resource_type, quantity)
            shard = self._rng.randrange(shards) if shards > 1 else 0
            key = counter_key(tenant_id, resource_type, shard, shards)
            if idempotency_key is None:
                counter, old = self._repo.consume(key, quantity, now, enforce=enforce)
                if counter is not None:
                    return self._granted(counter, quantity, enforce, shards, ((shard, quantity),), None)
            else:
                taken = self._repo.consume_once(
                    key,
                    quantity,
                    now,
                    enforce=enforce,
                    record=self._record(
                        tenant_id, resource_type, quantity, now, ((shard, quantity),), shards, idempotency_key
                    ),
                )
                if taken.granted:
                    return self._answer_keyed(
                        tenant_id, resource_type, quantity, enforce, shards, ((shard, quantity),), idempotency_key
                    )
                if taken.existing_record is not None:
                    return self._replay(taken.existing_record, resource_type, quantity)
                if taken.conflict:
                    continue
                old = taken.counter_item
            outcome = self._slow_path(tenant_id, resource_type, quantity, shards, old, now, enforce, idempotency_key)
            if isinstance(outcome, EntitlementCheck):
                return outcome
            shards = outcome
        raise RateLimitedError("the quota is under heavy contention; retry shortly")

    def _slow_path(
        self,
        tenant_id: str,
        resource_type: str,
        quantity: Decimal,
        shards: int,
        old: Item | None,
        now: datetime,
        enforce: bool,
        idempotency_key: str | None,
    ) -> EntitlementCheck | int:
        """Why the hot-path condition failed, and what to do: a final answer, or the layout to retry."""
        if old is None:
            return self._provision(tenant_id, resource_type)
        counter = counter_from_item(old)
        if counter.state is CounterState.RETIRED:
            # The directory (unsharded key) names the layout in force. A retired shard may be a leftover
            # of an older layout, so its pointer is not trusted: ask the directory (and finish a
            # half-done layout switch on the way).
            current = counter.current_shards if counter.shards <= 1 else None
            if current is None or current == shards:
                current = self._provision(tenant_id, resource_type)
            if current == 0:
                return self._not_in_plan(tenant_id, resource_type, quantity, enforce)
            self._layouts.put((tenant_id, resource_type), current)
            return current
        if counter.state is CounterState.SUSPENDED:
            return self._suspended_answer(counter, quantity, enforce, shards)
        if counter.period_end <= now:
            self._roll(counter, now)
            return shards
        if shards > 1:
            return self._consume_spread(tenant_id, resource_type, quantity, shards, enforce, idempotency_key)
        logger.info(
            "quota exhausted",
            extra={"tenant_id": tenant_id, "resource_type": resource_type, "remaining": str(counter.remaining)},
        )
        return check_from_counter(counter, quantity, allowed=False, reason=DenyReason.EXHAUSTED)

    def _consume_spread(
        self,
        tenant_id: str,
        resource_type: str,
        quantity: Decimal,
        shards: int,
        enforce: bool,
        idempotency_key: str | None,
    ) -> EntitlementCheck | int:
        """The sharded fallback: read every shard, take from one that covers the quantity, else spread
        the take over several in one transaction; deny only when all of them together fall short."""
        keys = [counter_key(tenant_id, resource_type, i, shards) for i in range(shards)]
        for _round in range(MAX_ROUNDS):
            now = self._clock()
            counters = sorted(self._repo.get_counters(keys), key=lambda c: c.shard)
            if len(counters) != shards or any(c.state is CounterState.RETIRED for c in counters):
                return self._provision(tenant_id, resource_type)
            expired = [c for c in counters if c.period_end <= now]
            if expired:
                for counter in expired:
                    self._roll(counter, now)
                continue
            suspended = [c for c in counters if c.state is CounterState.SUSPENDED]
            if suspended:
                return self._suspended_answer(combine_shards(counters), quantity, enforce, shards)
            total = combine_shards(counters)
            if enforce and total.policy is QuotaPolicy.HARD and total.remaining < quantity:
                logger.info("sharded quota exhausted", extra={"tenant_id": tenant_id, "resource_type": resource_type})
                return check_from_counter(total, quantity, allowed=False, reason=DenyReason.EXHAUSTED)
            richest = max(counters, key=lambda c: c.remaining)
            if richest.remaining >= quantity or total.policy is not QuotaPolicy.HARD or not enforce:
                takes = [(richest, quantity)]
            else:
                takes = []
                left = quantity
                for counter in sorted(counters, key=lambda c: c.remaining, reverse=True):
                    take = min(left, counter.remaining)
                    if take > 0:
                        takes.append((counter, take))
                        left -= take
                    if left <= 0:
                        break
            record = None
            if idempotency_key is not None:
                record = self._record(
                    tenant_id,
                    resource_type,
                    quantity,
                    now,
                    tuple((c.shard, q) for c, q in takes),
                    shards,
                    idempotency_key,
                )
            if len(takes) == 1 and record is None:
                counter, take = takes[0]
                after, _old = self._repo.consume(keys[counter.shard], take, now, enforce=enforce)
                if after is not None:
                    return self._granted(after, quantity, enforce, shards, ((counter.shard, take),), None)
                continue
            outcome: KeyedTake = self._repo.take_from_shards(takes, now, record)
            if outcome.existing_record is not None:
                return self._replay(outcome.existing_record, resource_type, quantity)
            if outcome.granted:
                shards_used = tuple((c.shard, q) for c, q in takes)
                if idempotency_key is not None:
                    return self._answer_keyed(
                        tenant_id, resource_type, quantity, enforce, shards, shards_used, idempotency_key
                    )
                after_total = replace(total, used=total.used + quantity, remaining=total.remaining - quantity)
                return check_from_counter(
                    after_total, quantity, allowed=True, enforced=enforce, approximate=True, shards_used=shards_used
                )
            time.sleep(self._rng.uniform(0, 0.005))  # a racing transaction held a shard: let it finish
        raise RateLimitedError("the quota is under heavy contention; retry shortly")

    def _granted(
        self,
        counter: QuotaCounter,
        quantity: Decimal,
        enforce: bool,
        shards: int,
        shards_used: tuple[tuple[int, Decimal], ...],
        idempotency_key: str | None,
    ) -> EntitlementCheck:
        view, approximate = counter, False
        if shards > 1:
            # One shard seen: the totals are an estimate (that shard's state times the shard count).
            view = replace(counter, used=counter.used * shards, remaining=counter.remaining * shards)
            if counter.total_limit is not None and counter.policy is not QuotaPolicy.UNLIMITED:
                # Not clamped at zero: a soft quota's overage shows as negative remaining.
                remaining = min(counter.total_limit, counter.remaining * shards)
                view = replace(view, remaining=remaining, used=counter.total_limit - remaining)
            approximate = True
        return check_from_counter(
            view,
            quantity,
            allowed=True,
            enforced=enforce,
            approximate=approximate,
            idempotency_key=idempotency_key,
            shards_used=shards_used,
        )

    # --- idempotent consumes -------------------------------------------------------------------

    @staticmethod
    def _record(
        tenant_id: str,
        resource_type: str,
        quantity: Decimal,
        now: datetime,
        shards_used: tuple[tuple[int, Decimal], ...],
        layout: int,
        idempotency_key: str,
    ) -> ConsumeRecord:
        return ConsumeRecord(
            tenant_id=tenant_id,
            idempotency_key=idempotency_key,
            resource_type=resource_type,
            quantity=quantity,
            consumed_at=now,
            shards=shards_used,
            layout=layout,
        )

    def _answer_keyed(
        self,
        tenant_id: str,
        resource_type: str,
        quantity: Decimal,
        enforce: bool,
        shards: int,
        shards_used: tuple[tuple[int, Decimal], ...],
        idempotency_key: str,
    ) -> EntitlementCheck:
        # A transaction returns no item: read the counter once for the answer, then store the answer
        # so every replay of this key gets the same one.
        shard = shards_used[0][0]
        counter = self._repo.get_counter(tenant_id, resource_type, shard, shards)
        if counter is None:
            raise RuntimeError("counter vanished after a granted consume")
        check = self._granted(counter, quantity, enforce, shards, shards_used, idempotency_key)
        self._repo.save_answer(tenant_id, idempotency_key, check)
        return check

    def _replay(self, record: ConsumeRecord, resource_type: str, quantity: Decimal) -> EntitlementCheck:
        if (record.resource_type, record.quantity) != (resource_type, quantity):
            # Answering the first request's result to a different request would hide a client bug.
            raise UnprocessableError(
                f"idempotency key {record.idempotency_key!r} was used for {record.quantity} {record.resource_type}",
                code="idempotency_key_reused",
            )
        answer = record.answer
        if answer is None:
            # The first attempt is between its transaction and storing its answer: give it a moment.
            for _ in range(5):
                time.sleep(REPLAY_WAIT_SECONDS)
                stored = self._repo.get_consume_record(record.tenant_id, record.idempotency_key)
                if stored is not None and stored.answer is not None:
                    answer = stored.answer
                    break
        if answer is None:
            counter = self._repo.get_counter(record.tenant_id, record.resource_type, *_first_shard(record))
            if counter is None:
                raise RuntimeError("consume record without a counter")
            answer = self._granted(counter, record.quantity, self.enforcing, record.layout, record.shards, None)
        return replace(answer, replayed=True, idempotency_key=record.idempotency_key, shards_used=record.shards)

    # --- check without consuming ---------------------------------------------------------------

    def check(self, tenant_id: str, resource_type: str, quantity: Decimal = ONE) -> EntitlementCheck:
        """Would `quantity` be granted now? Reads the counters (strongly consistent); writes nothing."""
        self.validate(resource_type, quantity)
        view = self._view(tenant_id, resource_type)
        now = self._clock()
        if view is None:
            return self._not_in_plan(tenant_id, resource_type, quantity, self.enforcing)
        if view.state is CounterState.SUSPENDED:
            return self._suspended_answer(view, quantity, self.enforcing, 1)
        allowed = view.allows(quantity, now, enforce=self.enforcing)
        return check_from_counter(
            view,
            quantity,
            allowed=allowed,
            enforced=self.enforcing,
            reason=None if allowed else DenyReason.EXHAUSTED,
        )

    def _view(self, tenant_id: str, resource_type: str) -> QuotaCounter | None:
        """The whole quota as one counter, rolled into the current period in memory; None when the
        resource is not in the plan. Unprovisioned quotas show the plan's fresh numbers."""
        now = self._clock()
        directory = self._repo.get_counter(tenant_id, resource_type)
        counters: list[QuotaCounter] = []
        if directory is not None and directory.state is not CounterState.RETIRED:
            counters = [directory]
        elif directory is not None and directory.current_shards:
            n = directory.current_shards
            counters = self._repo.get_counters([counter_key(tenant_id, resource_type, i, n) for i in range(n)])
        elif directory is not None:
            return None
        if not counters:
            plan = self.plan_for(tenant_id)
            quota = self._catalog.plan(plan.plan_id).quota(resource_type)
            if quota is None:
                return None
            return self._fresh_counter(tenant_id, resource_type, plan, quota, _plan_period(plan, now))
        rolled = [
            c if c.period_end > now else c.rolled(*advance_period(c.period_start, c.period_end, now)) for c in counters
        ]
        return combine_shards(rolled) if len(rolled) > 1 else rolled[0]

    # --- release -------------------------------------------------------------------------------

    def release(
        self,
        tenant_id: str,
        resource_type: str,
        quantity: Decimal | None = None,
        *,
        idempotency_key: str | None = None,
        period_end: datetime | None = None,
    ) -> EntitlementCheck:
        """Give quota back (work that failed). With `idempotency_key`, exactly what that consume took,
        once, and only within its period. Without, up to `quantity`, never below zero used (and with
        `period_end`, only while the quota is still in that period). The answer's `quantity` is the
        amount actually given back."""
        self.validate(resource_type, quantity)
        if idempotency_key is not None:
            return self._release_keyed(tenant_id, resource_type, quantity, idempotency_key)
        if quantity is None:
            raise UnprocessableError("quantity is required without an idempotency key", code="invalid_quantity")
        return self.release_taken(tenant_id, resource_type, ((-1, quantity),), period_end=period_end)

    def release_taken(
        self,
        tenant_id: str,
        resource_type: str,
        shards_used: tuple[tuple[int, Decimal], ...],
        *,
        period_end: datetime | None = None,
    ) -> EntitlementCheck:
        """Give back takes as a consume answer lists them ((shard, quantity), shard -1: any shard)."""
        wanted = sum((q for _s, q in shards_used), ZERO)
        given = ZERO
        layout = self._layouts.get((tenant_id, resource_type)) or 1
        for _round in range(MAX_ROUNDS):
            counters = self._live_counters(tenant_id, resource_type, layout)
            if counters is None:
                return self._not_in_plan(tenant_id, resource_type, wanted, self.enforcing)
            if counters and counters[0].shards != layout:
                layout = counters[0].shards
                shards_used = ((-1, wanted - given),)
            pending: list[tuple[QuotaCounter, Decimal]] = []
            left = wanted - given
            preferred = {s: q for s, q in shards_used if s >= 0}
            for counter in sorted(counters, key=lambda c: (c.shard not in preferred, -c.used)):
                if left <= 0:
                    break
                if period_end is not None and not same_period(counter.period_end, period_end):
                    continue
                take = min(left, counter.used)
                if take > 0:
                    pending.append((counter, take))
                    left -= take
            if not pending:
                break
            raced = False
            for counter, take in pending:
                key = counter_key(tenant_id, resource_type, counter.shard, counter.shards)
                after, _old = self._repo.release(key, take, period_end=counter.period_end)
                if after is None:
                    raced = True
                    break
                given += take
            if not raced:
                break
        view = self._view(tenant_id, resource_type)
        if view is None:
            return self._not_in_plan(tenant_id, resource_type, given, self.enforcing)
        return check_from_counter(view, given, allowed=True, enforced=self.enforcing)

    def _live_counters(self, tenant_id: str, resource_type: str, layout: int) -> list[QuotaCounter] | None:
        """The counters of the layout in force (empty: not provisioned; None: not in the plan)."""
        directory = self._repo.get_counter(tenant_id, resource_type)
        if directory is None:
            return []
        if directory.state is not CounterState.RETIRED:
            return [directory]
        n = directory.current_shards or 0
        if n == 0:
            return None
        self._layouts.put((tenant_id, resource_type), n)
        return self._repo.get_counters([counter_key(tenant_id, resource_type, i, n) for i in range(n)])

    def _release_keyed(
        self, tenant_id: str, resource_type: str, quantity: Decimal | None, idempotency_key: str
    ) -> EntitlementCheck:
        record = self._repo.get_consume_record(tenant_id, idempotency_key)
        if record is None:
            raise NotFoundError(f"no consume with idempotency key {idempotency_key!r}", code="unknown_consume")
        if record.resource_type != resource_type:
            raise UnprocessableError(
                f"idempotency key {idempotency_key!r} consumed {record.resource_type!r}, not {resource_type!r}",
                code="resource_mismatch",
            )
        if quantity is not None and quantity != record.quantity:
            raise UnprocessableError(
                f"idempotency key {idempotency_key!r} consumed {record.quantity}, not {quantity}",
                code="quantity_mismatch",
            )
        # A recorded denial took nothing, so it gives nothing back.
        released = False if record.released or not record.shards else self._repo.release_once(record)
        if not released:
            logger.info("release not applied", extra={"tenant_id": tenant_id, "already_released": record.released})
        view = self._view(tenant_id, resource_type)
        if view is None:
            return self._not_in_plan(tenant_id, resource_type, ZERO, self.enforcing)
        given = record.quantity if released else ZERO
        return replace(
            check_from_counter(view, given, allowed=True, enforced=self.enforcing),
            replayed=not released,
            idempotency_key=idempotency_key,
        )

    # --- listing -------------------------------------------------------------------------------

    def entitlements(self, tenant_id: str) -> TenantEntitlements:
        """Every quota (limit, used, remaining, period) and feature of the tenant."""
        plan = self.plan_for(tenant_id, fresh=True)
        catalog_plan = self._catalog.plan(plan.plan_id)
        views: list[QuotaView] = []
        for resource_type in sorted(catalog_plan.quotas):
            counter = self._view(tenant_id, resource_type)
            if counter is None:
                continue
            check = check_from_counter(counter, ZERO, allowed=True)
            views.append(
                QuotaView(
                    resource_type=resource_type,
                    policy=counter.policy,
                    limit=check.limit,
                    used=counter.used,
                    remaining=check.remaining,
                    overage=check.overage,
                    period_start=counter.period_start,
                    period_end=counter.period_end,
                    state=counter.state.value,
                    shards=counter.shards,
                )
            )
        return TenantEntitlements(plan=plan, quotas=tuple(views))

    # --- answers that are not counter updates ---------------------------------------------------

    @staticmethod
    def _not_in_plan(tenant_id: str, resource_type: str, quantity: Decimal, enforce: bool) -> EntitlementCheck:
        return EntitlementCheck(
            tenant_id=tenant_id,
            resource_type=resource_type,
            quantity=quantity,
            allowed=not enforce,
            policy=None,
            limit=ZERO,
            used=ZERO,
            remaining=ZERO,
            resets_at=None,
            reason=None if not enforce else DenyReason.NOT_IN_PLAN,
            enforced=enforce,
        )

    @staticmethod
    def _suspended_answer(counter: QuotaCounter, quantity: Decimal, enforce: bool, shards: int) -> EntitlementCheck:
        # With enforcement off the request is allowed; a suspended counter cannot record it.
        return check_from_counter(
            counter,
            quantity,
            allowed=not enforce,
            enforced=enforce,
            reason=DenyReason.SUSPENDED,
            approximate=shards > 1,
        )

    # --- periods and provisioning --------------------------------------------------------------

    def _roll(self, counter: QuotaCounter, now: datetime) -> None:
        start, end = advance_period(counter.period_start, counter.period_end, now)
        if self._repo.rollover(counter, start, end, now):
            logger.info(
                "quota period rolled over",
                extra={
                    "tenant_id": counter.tenant_id,
                    "resource_type": counter.resource_type,
                    "period_end": end.isoformat(),
                },
            )

    def _provision(self, tenant_id: str, resource_type: str) -> int:
        """Create (or align) the tenant's counters for `resource_type` from its plan; the layout in force."""
        plan = self.plan_for(tenant_id, fresh=True)
        now = self._clock()
        quota = self._catalog.plan(plan.plan_id).quota(resource_type)
        period = _plan_period(plan, now)
        state = CounterState.SUSPENDED if plan.suspended else CounterState.ACTIVE
        return self._reconcile(tenant_id, resource_type, plan, quota, period, _Mode.RENEW, state, only_missing=True)

    def _fresh_counter(
        self,
        tenant_id: str,
        resource_type: str,
        plan: TenantPlan,
        quota: ResourceQuota,
        period: tuple[datetime, datetime],
    ) -> QuotaCounter:
        limit = ZERO if quota.limit is None else quota.limit
        return QuotaCounter(
            tenant_id=tenant_id,
            resource_type=resource_type,
            policy=quota.policy,
            limit=limit,
            used=ZERO,
            remaining=limit,
            period_start=period[0],
            period_end=period[1],
            plan_id=plan.plan_id,
            total_limit=quota.limit,
        )

    def _reconcile(
        self,
        tenant_id: str,
        resource_type: str,
        plan: TenantPlan,
        quota: ResourceQuota | None,
        period: tuple[datetime, datetime],
        mode: _Mode,
        state: CounterState,
        *,
        only_missing: bool = False,
    ) -> int:
        """Bring one quota's counters to the plan's terms; returns the layout in force (0: not in plan).

        Same layout: each counter is updated on its own, conditioned on the period end it had, with
        `used` kept unless a later period starts (relative updates: consumers never stall it).
        Another layout: first the old counters are frozen (retired, pointing at the new layout), so
        their `used` is final however busy the quota is; then the new counters are created carrying
        exactly that usage, in one transaction with the directory. Callers that meet the half-way
        state (old frozen, new not yet there) provision the same way, so whoever is first wins and
        nothing is lost or granted twice."""
        target = (plan.counter_shards if quota is not None else 0) or 0
        for _round in range(MAX_ROUNDS):
            now = self._clock()
            directory = self._repo.get_counter(tenant_id, resource_type)
            if directory is None:
                layout = -1
                current: list[QuotaCounter] = []
            elif directory.state is CounterState.RETIRED:
                layout = directory.current_shards or 0
                keys = [counter_key(tenant_id, resource_type, i, layout) for i in range(layout)] if layout > 1 else []
                current = self._repo.get_counters(keys) if keys else []
            else:
                layout, current = 1, [directory]
            live = [c for c in current if c.state is not CounterState.RETIRED]
            complete = layout >= 0 and len(live) == max(layout, 0) and len(current) == max(layout, 0)
            if only_missing and complete:
                # Provisioned meanwhile (or by someone else): nothing to create.
                self._layouts.put((tenant_id, resource_type), layout)
                return layout
            if layout == target and target >= 1 and complete:
                if self._update_terms(live, quota, plan, period, mode, state, now):
                    self._layouts.put((tenant_id, resource_type), target)
                    return target
                continue
            if layout >= 1 and layout != target and live:
                for counter in live:  # freeze: no consume lands on the old layout after this
                    self._repo.retire(counter, target, now)
                continue
            if layout == target == 0:
                return 0
            # Where the carried usage is: counters this switch froze (they point at the target; a
            # leftover of an older layout under the same keys never does), else a retired directory
            # (a one-counter layout frozen in place, or a resource that was out of the plan).
            frozen = bool(current) and all(c.current_shards == target for c in current) and layout != target
            if frozen:
                carry_from = current
            elif directory is not None and directory.state is CounterState.RETIRED:
                carry_from = [directory]
            else:
                carry_from = []
            if self._switch(
                tenant_id, resource_type, directory, current, carry_from, target, quota, plan, period, mode, state, now
            ):
                self._layouts.put((tenant_id, resource_type), target)
                logger.info(
                    "quota layout set",
                    extra={"tenant_id": tenant_id, "resource_type": resource_type, "shards": target},
                )
                return target
        raise RateLimitedError("the quota changed too often while the plan was applied; retry")

    def _update_terms(
        self,
        current: list[QuotaCounter],
        quota: ResourceQuota | None,
        plan: TenantPlan,
        period: tuple[datetime, datetime],
        mode: _Mode,
        state: CounterState,
        now: datetime,
    ) -> bool:
        assert quota is not None
        limits = split_limit(quota.limit if quota.limit is not None else ZERO, len(current))
        for counter in sorted(current, key=lambda c: c.shard):
            reset, start, end = _decide_period(counter, period, mode, now)
            if not self._repo.set_plan_terms(
                counter,
                limit=limits[counter.shard],
                total_limit=quota.limit,
                policy=quota.policy,
                plan_id=plan.plan_id,
                period_start=start,
                period_end=end,
                reset=reset,
                now=now,
            ):
                return False
            if state is CounterState.SUSPENDED:
                self._repo.set_state(counter, CounterState.SUSPENDED, now)
        return True

    def _switch(
        self,
        tenant_id: str,
        resource_type: str,
        directory: QuotaCounter | None,
        current: list[QuotaCounter],
        carry_from: list[QuotaCounter],
        target: int,
        quota: ResourceQuota | None,
        plan: TenantPlan,
        period: tuple[datetime, datetime],
        mode: _Mode,
        state: CounterState,
        now: datetime,
    ) -> bool:
        seen = {c.shard if c.shards > 1 else -1: c for c in current}
        if directory is not None:
            seen[-1] = directory
        used = sum((c.used for c in carry_from), ZERO)
        start, end = period
        if carry_from:
            reset, start, end = _decide_period(combine_shards(carry_from), period, mode, now)
            if reset:
                used = ZERO
        writes: list[tuple[QuotaCounter, QuotaCounter | None]] = []
        marker_of = target
        if quota is not None and target >= 1:
            total = quota.limit if quota.limit is not None else ZERO
            limits = split_limit(total, target)
            useds = spread_used(used, limits)
            for i in range(target):
                slot = i if target > 1 else -1
                writes.append(
                    (
                        QuotaCounter(
                            tenant_id=tenant_id,
                            resource_type=resource_type,
                            policy=quota.policy,
                            limit=limits[i],
                            used=useds[i],
                            remaining=limits[i] - useds[i],
                            period_start=start,
                            period_end=end,
                            plan_id=plan.plan_id,
                            state=state,
                            shard=i if target > 1 else 0,
                            shards=target,
                            total_limit=quota.limit,
                        ),
                        seen.pop(slot, None),
                    )
                )
        if target != 1:
            writes.append(
                (
                    QuotaCounter(
                        tenant_id=tenant_id,
                        resource_type=resource_type,
                        policy=quota.policy if quota else QuotaPolicy.HARD,
                        limit=ZERO,
                        used=used,
                        remaining=ZERO,
                        period_start=start,
                        period_end=end,
                        plan_id=plan.plan_id,
                        state=CounterState.RETIRED,
                        current_shards=marker_of,
                    ),
                    seen.pop(-1, None),
                )
            )
        # Old shards beyond the new layout were frozen already; they just stay retired.
        return self._repo.switch_layout(writes, [], now)

    # --- effects of the subscription lifecycle (billing_platform.subscriptions.webhooks) --------

    def apply_plan(
        self,
        tenant_id: str,
        plan_id: str,
        *,
        period_start: datetime,
        period_end: datetime,
        status: str = "active",
        source_version: int | None = None,
    ) -> None:
        """Make `plan_id` the tenant's plan for [period_start, period_end): quotas change at once
        (an upgrade keeps this period's usage and raises the limit), a later period starts afresh
        (a renewal), unless a lazy rollover already started that same period. An application with
        a `source_version` older than the stored one changes nothing."""
        catalog_plan = self._catalog.plan(plan_id)
        if period_end <= period_start:
            raise UnprocessableError("the billing period must end after it starts", code="invalid_period")
        now = self._clock()
        plan = TenantPlan(
            tenant_id=tenant_id,
            plan_id=plan_id,
            status=status,
            period_start=period_start,
            period_end=period_end,
            features=dict(catalog_plan.features),
            counter_shards=catalog_plan.counter_shards,
            source_version=source_version,
        )
        self._apply(plan, _Mode.RENEW, CounterState.ACTIVE, now)

    def suspend(self, tenant_id: str, reason: str) -> None:
        """Deny every quota and feature of the tenant (usage stays visible) until a plan is applied."""
        now = self._clock()
        stored = self.plan_for(tenant_id, fresh=True)
        plan = replace(stored, status=PlanStatus.SUSPENDED.value, suspended_reason=reason, stored=True)
        if not self._repo.put_plan(plan, now):
            return
        self._plans.invalidate(tenant_id)
        for resource_type in self._catalog.resource_types:
            counters = self._live_counters(tenant_id, resource_type, 1)
            for counter in counters or []:
                self._repo.set_state(counter, CounterState.SUSPENDED, now)
        logger.info("entitlements suspended", extra={"tenant_id": tenant_id, "reason": reason})

    def revoke(self, tenant_id: str) -> None:
        """Back to the catalog default plan (subscription canceled). Usage of the live period carries
        over, so cancelling never refills a quota."""
        now = self._clock()
        default = self._catalog.default
        stored = self._repo.get_plan(tenant_id)
        start, end = calendar_month(now)
        plan = TenantPlan(
            tenant_id=tenant_id,
            plan_id=default.id,
            status="canceled",
            period_start=start,
            period_end=end,
            features=dict(default.features),
            counter_shards=default.counter_shards,
            # Kept, so an older subscription event arriving late cannot bring the old plan back.
            source_version=stored.source_version if stored else None,
        )
        self._apply(plan, _Mode.KEEP, CounterState.ACTIVE, now)

    def _apply(self, plan: TenantPlan, mode: _Mode, state: CounterState, now: datetime) -> None:
        if not self._repo.put_plan(plan, now):
            logger.info(
                "older plan application ignored",
                extra={"tenant_id": plan.tenant_id, "plan_id": plan.plan_id, "source_version": plan.source_version},
            )
            return
        self._plans.invalidate(plan.tenant_id)
        catalog_plan = self._catalog.plan(plan.plan_id)
        period = _plan_period(plan, now)
        for resource_type in sorted(self._catalog.resource_types):
            self._reconcile(plan.tenant_id, resource_type, plan, catalog_plan.quota(resource_type), period, mode, state)
        logger.info(
            "plan applied",
            extra={"tenant_id": plan.tenant_id, "plan_id": plan.plan_id, "status": plan.status, "mode": mode.value},
        )


def _first_shard(record: ConsumeRecord) -> tuple[int, int]:
    shard = record.shards[0][0] if record.shards else 0
    return shard, record.layout


def _plan_period(plan: TenantPlan, now: datetime) -> tuple[datetime, datetime]:
    """The plan's period, stepped forward to the one containing now when no renewal came yet."""
    if plan.period_end > now:
        return plan.period_start, plan.period_end
    return advance_period(plan.period_start, plan.period_end, now)


def _decide_period(
    counter: QuotaCounter, period: tuple[datetime, datetime], mode: _Mode, now: datetime
) -> tuple[bool, datetime, datetime]:
    """(reset used?, start, end) for applying `period` to a counter. Never grants a period twice: the
    same period (whoever started it: a lazy rollover or an earlier webhook) keeps its usage, and a
    counter already ahead of `period` keeps its own."""
    start, end = period
    if same_period(counter.period_end, end):
        return False, start, end
    if counter.period_end > end:
        return False, counter.period_start, counter.period_end
    if mode is _Mode.KEEP:
        return counter.period_end <= now, start, end
    return True, start, end
