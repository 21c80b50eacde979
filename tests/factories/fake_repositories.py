"""In-memory stand-ins for the entitlement and grant repositories, for fast tests of the use cases (consume,
slow path, reconcile, release, reservations, grants) with no database, as cosmicpython's `FakeRepository`.

Each method keeps the contract of the DynamoDB one it replaces (the same conditions, the same answers on a
refused condition), evaluated on plain values. What they cannot prove is what only DynamoDB can: that the
conditions are atomic under concurrency. The DynamoDB Local proofs (marked ddblocal) stay for that."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing_platform.audit.log import AuditEntry
from billing_platform.catalog.models import QuotaPolicy
from billing_platform.entitlements.dal.items import Item, counter_pk, counter_to_item
from billing_platform.entitlements.models import CounterState, QuotaCounter, TenantPlan
from billing_platform.entitlements.repository import ConsumeRecord, KeyedTake
from billing_platform.grants.models import Grant, GrantState
from billing_platform.instants import to_epoch


def _pk(key: Item) -> str:
    return str(key["pk"]["S"])


def _same(stored: QuotaCounter | None, seen: QuotaCounter | None) -> bool:
    """What the repository's `_seen_condition` holds: the item is exactly as the caller saw it."""
    if seen is None:
        return stored is None or stored.state is CounterState.RETIRED
    if stored is None:
        return False
    fields = ("used", "remaining", "limit", "state", "shards", "policy")
    return all(getattr(stored, f) == getattr(seen, f) for f in fields) and to_epoch(stored.period_end) == to_epoch(
        seen.period_end
    )


class FakeEntitlementRepository:
    """Plans, counters and consume records in dicts. Counters are stored as `QuotaCounter` values; a refused
    take answers the item as DynamoDB would (`counter_to_item`), since the slow path reads that."""

    def __init__(self, *, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.plans: dict[str, TenantPlan] = {}
        self.counters: dict[str, QuotaCounter] = {}
        self.records: dict[tuple[str, str], ConsumeRecord] = {}
        self.known_tenants: set[str] = set()
        self.requests: list[str] = []  # the name of every call that would be a DynamoDB request
        self.injected_client: Any = None

    # --- plans --------------------------------------------------------------------------------
    def get_plan(self, tenant_id: str) -> TenantPlan | None:
        self.requests.append("GetItem")
        return self.plans.get(tenant_id)

    def tenant_known(self, tenant_id: str) -> bool:
        self.requests.append("BatchGetItem")
        return tenant_id in self.plans or tenant_id in self.known_tenants

    def put_plan(self, plan: TenantPlan, now: datetime) -> bool:
        self.requests.append("PutItem")
        stored = self.plans.get(plan.tenant_id)
        if (
            plan.source_version is not None
            and stored is not None
            and (stored.source_version or 0) > plan.source_version
        ):
            return False  # an older application never overwrites a newer one
        self.plans[plan.tenant_id] = plan
        return True

    # --- counters -----------------------------------------------------------------------------
    def get_counter(self, tenant_id: str, resource_type: str, shard: int = 0, shards: int = 1) -> QuotaCounter | None:
        self.requests.append("GetItem")
        return self.counters.get(counter_pk(tenant_id, resource_type, shard, shards))

    def get_counters(self, keys: list[Item]) -> list[QuotaCounter]:
        self.requests.append("BatchGetItem")
        return [self.counters[_pk(k)] for k in keys if _pk(k) in self.counters]

    def get_layout(self, tenant_id: str, resource_type: str, shards: int) -> list[QuotaCounter]:
        self.requests.append("BatchGetItem")
        pks = [counter_pk(tenant_id, resource_type, i, shards) for i in range(shards)]
        return sorted((self.counters[pk] for pk in pks if pk in self.counters), key=lambda c: c.shard)

    def consume(
        self, key: Item, quantity: Decimal, now: datetime, *, enforce: bool, windows: str = ""
    ) -> tuple[QuotaCounter | None, Item | None]:
        self.requests.append("UpdateItem")
        stored = self.counters.get(_pk(key))
        if stored is None:
            return None, None
        # The fake models no window state: a counter with windows runs on DynamoDB Local only.
        if stored.windows != windows or not stored.allows(quantity, now, enforce=enforce):
            return None, counter_to_item(stored, now)
        after = stored.consumed(quantity)
        self.counters[_pk(key)] = after
        return after, None

    def release(
        self, key: Item, quantity: Decimal, *, period_end: datetime | None = None
    ) -> tuple[QuotaCounter | None, Item | None]:
        self.requests.append("UpdateItem")
        stored = self.counters.get(_pk(key))
        if stored is None:
            return None, None
        in_period = period_end is None or to_epoch(stored.period_end) == to_epoch(period_end)
        if stored.used < quantity or stored.state is CounterState.RETIRED or not in_period:
            return None, counter_to_item(stored, self.clock())
        after = replace(stored, used=stored.used - quantity, remaining=stored.remaining + quantity)
        self.counters[_pk(key)] = after
        return after, None

    # --- layouts ------------------------------------------------------------------------------
    def rollover(self, counter: QuotaCounter, start: datetime, end: datetime, now: datetime) -> bool:
        self.requests.append("UpdateItem")
        pk = counter_pk(counter.tenant_id, counter.resource_type, counter.shard, counter.shards)
        stored = self.counters.get(pk)
        if stored is None or to_epoch(stored.period_end) != to_epoch(counter.period_end):
            return False
        self.counters[pk] = stored.rolled(start, end)
        return True

    def set_plan_terms(
        self,
        existing: QuotaCounter,
        *,
        limit: Decimal,
        total_limit: Decimal | None,
        policy: QuotaPolicy,
        plan_id: str,
        period_start: datetime,
        period_end: datetime,
        reset: bool,
        now: datetime,
    ) -> bool:
        self.requests.append("UpdateItem")
        pk = counter_pk(existing.tenant_id, existing.resource_type, existing.shard, existing.shards)
        stored = self.counters.get(pk)
        if stored is None or to_epoch(stored.period_end) != to_epoch(existing.period_end):
            return False
        used = Decimal(0) if reset else stored.used
        self.counters[pk] = replace(
            stored,
            limit=limit,
            total_limit=total_limit,
            policy=policy,
            plan_id=plan_id,
            period_start=period_start,
            period_end=period_end,
            state=CounterState.ACTIVE,
            used=used,
            remaining=limit - used,
            current_shards=None,
        )
        return True

    def switch_layout(
        self,
        writes: list[tuple[QuotaCounter, QuotaCounter | None]],
        retires: list[tuple[QuotaCounter, int]],
        now: datetime,
    ) -> bool:
        self.requests.append("TransactWriteItems")

        def pk_of(c: QuotaCounter) -> str:
            return counter_pk(c.tenant_id, c.resource_type, c.shard, c.shards)

        if not all(_same(self.counters.get(pk_of(c)), seen) for c, seen in writes):
            return False
        if not all(_same(self.counters.get(pk_of(old)), old) for old, _current in retires):
            return False
        for counter, _seen in writes:
            self.counters[pk_of(counter)] = counter
        for old, current in retires:
            self.counters[pk_of(old)] = replace(old, state=CounterState.RETIRED, current_shards=current)
        return True

    def retire(self, counter: QuotaCounter, current_shards: int, now: datetime) -> bool:
        return self._set_live_state(counter, CounterState.RETIRED, current_shards)

    def set_state(self, counter: QuotaCounter, state: CounterState, now: datetime) -> bool:
        return self._set_live_state(counter, state, None)

    def _set_live_state(self, counter: QuotaCounter, state: CounterState, current_shards: int | None) -> bool:
        self.requests.append("UpdateItem")
        pk = counter_pk(counter.tenant_id, counter.resource_type, counter.shard, counter.shards)
        stored = self.counters.get(pk)
        if stored is None or stored.state is CounterState.RETIRED:
            return False
        self.counters[pk] = replace(stored, state=state, current_shards=current_shards)
        return True

    # --- consume records (the keyed flow's) -----------------------------------------------------
    def get_consume_record(self, tenant_id: str, idempotency_key: str) -> ConsumeRecord | None:
        self.requests.append("GetItem")
        return self.records.get((tenant_id, idempotency_key))

    def put_consume_record(self, record: ConsumeRecord) -> bool:
        self.requests.append("PutItem")
        return self.records.setdefault((record.tenant_id, record.idempotency_key), record) is record

    def save_answer(self, tenant_id: str, idempotency_key: str, answer: Any) -> None:
        self.requests.append("UpdateItem")
        self.records[(tenant_id, idempotency_key)] = replace(self.records[(tenant_id, idempotency_key)], answer=answer)

    def get_counter_and_record(
        self, key: Item, tenant_id: str, idempotency_key: str
    ) -> tuple[QuotaCounter | None, ConsumeRecord | None]:
        self.requests.append("BatchGetItem")
        return self.counters.get(_pk(key)), self.records.get((tenant_id, idempotency_key))

    def consume_once(
        self, key: Item, quantity: Decimal, now: datetime, *, enforce: bool, record: ConsumeRecord, windows: str = ""
    ) -> KeyedTake:
        self.requests.append("TransactWriteItems")
        return self._take_with_record(_pk(key), None, quantity, now, enforce=enforce, record=record)

    def consume_once_pinned(
        self, expected: QuotaCounter, quantity: Decimal, now: datetime, *, enforce: bool, record: ConsumeRecord
    ) -> KeyedTake:
        self.requests.append("TransactWriteItems")
        pk = counter_pk(expected.tenant_id, expected.resource_type, expected.shard, expected.shards)
        return self._take_with_record(pk, expected, quantity, now, enforce=enforce, record=record)

    def _take_with_record(
        self,
        pk: str,
        expected: QuotaCounter | None,
        quantity: Decimal,
        now: datetime,
        *,
        enforce: bool,
        record: ConsumeRecord,
    ) -> KeyedTake:
        existing = self.records.get((record.tenant_id, record.idempotency_key))
        if existing is not None:
            return KeyedTake(granted=False, existing_record=existing)
        stored = self.counters.get(pk)
        pinned = expected is None or _same(stored, expected)
        if stored is None or not pinned or not stored.allows(quantity, now, enforce=enforce):
            return KeyedTake(granted=False, counter_item=counter_to_item(stored, now) if stored else None)
        self.counters[pk] = stored.consumed(quantity)
        self.records[(record.tenant_id, record.idempotency_key)] = record
        return KeyedTake(granted=True)


class FakeGrantRepository:
    """Grants and their audit entries in lists, as `GrantRepository` keeps them (no draw: tests with grants
    to draw from run on DynamoDB Local, where the draw's transaction is real)."""

    def __init__(self) -> None:
        self.grants: list[Grant] = []
        self.audits: list[AuditEntry] = []

    def create(self, grants: list[Grant], audit: AuditEntry) -> bool:
        taken = {(g.tenant_id, g.grant_id) for g in self.grants}
        if any((g.tenant_id, g.grant_id) in taken for g in grants):
            return False
        self.grants.extend(grants)
        self.audits.append(audit)
        return True

    def find(self, tenant_id: str, grant_id: str) -> Grant | None:
        return next((g for g in self.grants if (g.tenant_id, g.grant_id) == (tenant_id, grant_id)), None)

    def void(self, grant: Grant, actor: str, now: datetime, audit: AuditEntry) -> bool:
        stored = self.find(grant.tenant_id, grant.grant_id)
        if stored is None or stored.state is not GrantState.ACTIVE or stored.remaining != grant.remaining:
            return False
        voided = replace(
            stored,
            state=GrantState.VOIDED,
            voided_amount=stored.remaining,
            remaining=Decimal(0),
            voided_at=now,
            voided_by=actor,
        )
        self.grants[self.grants.index(stored)] = voided
        self.audits.append(audit)
        return True

    def list(self, tenant_id: str, resource_type: str | None = None, *, consistent: bool = True) -> list[Grant]:
        return [
            g
            for g in self.grants
            if g.tenant_id == tenant_id and (resource_type is None or g.resource_type == resource_type)
        ]
