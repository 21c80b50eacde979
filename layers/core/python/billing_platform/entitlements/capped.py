"""Spend caps (billing_platform.spend): setting them, and the capped consume, a take use case of this package.

A tenant without a cap (the container remembers it for the plan cache's TTL) consumes on the hot path
as before: one request. A tenant with a cap consumes through `entitlements.take` (the quota take with
companion items in one transaction: provisioning, period roll, shards and grants handled as for any take)
whose companion is the period's spend item (`repository.spend_update`), plus the idempotent consume's
record for a keyed consume. So the quota and the spend move together or not at all, and a hard cap's
condition is decided in that same write: the spend never passes the cap whatever the concurrency.

A refused spend condition brings the spend item back as it was: the take is priced again at that exact
state; when the cap is what refused it, the answer is 402 `spend_cap_reached` with the cap, the spend
and what the take would have cost, all read in that refusal.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing_platform.auth.caller import Actor
from billing_platform.catalog.prices import UsagePrice
from billing_platform.entitlements.answers import granted
from billing_platform.entitlements.cache import TTLCache
from billing_platform.entitlements.context import MAX_ROUNDS, EntitlementContext
from billing_platform.entitlements.dal.consume_records import ConsumeRecord, record_from_item
from billing_platform.entitlements.entity_take import LevelRequest, LevelTaken, take_at_levels
from billing_platform.entitlements.entity_take import granted_answer as granted_answer_at_levels
from billing_platform.entitlements.models import ConsumeRequest, EntitlementCheck
from billing_platform.entitlements.plans import plan_for, plan_period
from billing_platform.entitlements.records import new_record, replay
from billing_platform.entitlements.take import GrantsPaid, Shares, take
from billing_platform.entitlements.views import read_quota
from billing_platform.errors import RateLimitedError, SpendCapReachedError, UnprocessableError
from billing_platform.quantities import ZERO
from billing_platform.rating.service import rate
from billing_platform.spend.models import (
    CapRefusal,
    SpendCap,
    SpendCapRequest,
    SpendState,
    affordable,
    budget_left,
    refusal,
    spend_step,
)
from billing_platform.spend.repository import SpendRepository, spend_key, spend_update, state_from_item


class SpendCaps:
    """The tenants' caps as this container knows them (cached like plans), and the spend items' last seen
    states (a guess that only saves a retry: every take is conditioned on the state it was priced at)."""

    def __init__(self, ctx: EntitlementContext, repository: SpendRepository | None = None) -> None:
        self._ctx = ctx
        self.repo = repository or SpendRepository(ctx.settings, ctx.repo.injected_client)
        # (cap,): a cached "no cap" is (None,), told apart from nothing cached.
        self._caps: TTLCache[str, tuple[SpendCap | None]] = TTLCache(ctx.cache_ttl_seconds)
        self._states: TTLCache[tuple[str, datetime], SpendState] = TTLCache(ctx.cache_ttl_seconds)

    def cap_for(self, tenant_id: str) -> SpendCap | None:
        """The tenant's cap (None: no cap), from the container's cache when it has looked it up lately."""
        cached = self._caps.get(tenant_id)
        if cached is not None:
            return cached[0]
        cap = self.repo.get_cap(tenant_id)
        self._caps.put(tenant_id, (cap,))
        return cap

    def set_cap(self, tenant_id: str, request: SpendCapRequest, *, actor: Actor) -> SpendCap:
        """Set (replace) the tenant's cap; 422 when its currency is not the plan's or a resource is not priced."""
        plan = plan_for(self._ctx, tenant_id, fresh=True)
        pricing = self._ctx.catalog.plan(plan.plan_id).pricing
        if pricing is None:
            raise UnprocessableError(f"plan {plan.plan_id!r} has no prices: a spend cap cannot apply", code="no_prices")
        if request.currency != pricing.currency:
            raise UnprocessableError(
                f"the cap is in {request.currency} but plan {plan.plan_id!r} charges in {pricing.currency}",
                code="currency_mismatch",
            )
        unknown = sorted(set(request.resources) - set(pricing.resources))
        if unknown:
            raise UnprocessableError(f"plan {plan.plan_id!r} does not price {', '.join(unknown)}", code="not_priced")
        now = self._ctx.clock()
        cap = SpendCap(
            tenant_id=tenant_id,
            currency=request.currency,
            amount=Decimal(request.amount),
            kind=request.kind,
            resources={r: Decimal(a) for r, a in request.resources.items()},
            entities={e: Decimal(a) for e, a in request.entities.items()},
            thresholds=request.thresholds,
            set_by=actor.principal_id,
            set_at=now,
        )
        self.repo.put_cap(cap, now)
        # The period's usage so far is counted from the start: the spend item begins at its rating.
        _start, period_end = plan_period(plan, now)
        used: dict[str, Decimal] = {}
        spent: dict[str, Decimal] = {}
        for resource, priced in pricing.resources.items():
            counter = read_quota(self._ctx, tenant_id, resource)
            if counter is not None and counter.used > 0:
                used[resource] = counter.used
                spent[resource] = rate(priced.price, counter.used).raw
        self.repo.seed(tenant_id, period_end, used, spent, cap)
        self._caps.put(tenant_id, (cap,))
        return cap

    def remove_cap(self, tenant_id: str) -> None:
        self.repo.delete_cap(tenant_id)
        self._caps.put(tenant_id, (None,))

    def price_of(self, tenant_id: str, resource_type: str) -> UsagePrice | None:
        plan = plan_for(self._ctx, tenant_id)
        pricing = self._ctx.catalog.plan(plan.plan_id).pricing
        priced = pricing.resources.get(resource_type) if pricing is not None else None
        return priced.price if priced is not None else None

    def consume(
        self, cap: SpendCap, tenant_id: str, resource_type: str, quantity: Decimal, idempotency_key: str | None
    ) -> EntitlementCheck | None:
        """The capped consume. None: the resource has no price on the plan (the caller consumes as usual)."""
        price = self.price_of(tenant_id, resource_type)
        if price is None:
            return None
        ctx = self._ctx
        request = ConsumeRequest(tenant_id, resource_type, quantity, idempotency_key)
        if idempotency_key is not None:
            record = ctx.repo.get_consume_record(tenant_id, idempotency_key)
            if record is not None:
                return replay(ctx, record, request)
        for _round in range(MAX_ROUNDS):
            now = ctx.clock()
            _start, period_end = plan_period(plan_for(ctx, tenant_id), now)
            key = spend_key(tenant_id, period_end)
            seen = self._states.get((tenant_id, period_end)) or SpendState()
            priced: list[tuple[Decimal, Decimal]] = []  # (units counted, spend delta) of the last build

            def companion(
                at: datetime,
                shares: Shares,
                layout: int,
                _grants: GrantsPaid,
                *,
                seen: SpendState = seen,
                priced: list[tuple[Decimal, Decimal]] = priced,
                key: dict[str, object] = key,
                period_end: datetime = period_end,
            ) -> list[dict[str, object]]:
                counted = sum((part for _shard, part in shares), ZERO)  # units grants paid are prepaid
                step = spend_step(price, seen.used_of(resource_type), counted)
                priced.append((counted, step.delta))
                items: list[dict[str, object]] = [
                    spend_update(self.repo.table, key, resource_type, step, cap, period_end)
                ]
                if idempotency_key is not None:
                    record = new_record(request, at, shares, layout)
                    items.append(ctx.repo.record_put_request(record))
                return items

            taken = take(ctx, request, companion)
            if taken.granted:
                self._states.put((tenant_id, period_end), _after(seen, resource_type, *priced[-1]))
                return self._answer(tenant_id, resource_type, quantity, taken.shares, taken.layout, idempotency_key)
            if taken.denial is not None:
                return taken.denial
            if taken.companion_index == 1 and taken.existing is not None and idempotency_key is not None:
                return replay(ctx, record_from_item(taken.existing), request)
            # The spend item was not where the take was priced: price it at the state it really has.
            actual = state_from_item(taken.existing)
            self._states.put((tenant_id, period_end), actual)
            step = spend_step(price, actual.used_of(resource_type), quantity)
            refused = refusal(cap, resource_type, actual, step.delta)
            if refused is not None:
                raise SpendCapReachedError(refused)
        raise RateLimitedError("the spend is under heavy contention; retry shortly")

    def consume_for_entity(self, cap: SpendCap, request: ConsumeRequest) -> EntitlementCheck | None:
        """The capped take for an entity: counted at every level of the entity's chain (`take_at_levels`)
        with the spend item (the step also added to the entity's line, and conditioned on its cap) and, keyed,
        the consume record, in one transaction. None: the resource has no price on the plan."""
        tenant_id, resource_type, entity_id = request.tenant_id, request.resource_type, request.entity_id
        price = self.price_of(tenant_id, resource_type)
        if price is None or entity_id is None:
            return None
        ctx, key = self._ctx, request.idempotency_key
        if key is not None:
            record = ctx.repo.get_consume_record(tenant_id, key)
            if record is not None:
                return replay(ctx, record, request)
        levels = LevelRequest(tenant_id, resource_type, request.quantity, entity_id)
        for _round in range(MAX_ROUNDS):
            _start, period_end = plan_period(plan_for(ctx, tenant_id), ctx.clock())
            seen = self._states.get((tenant_id, period_end)) or SpendState()
            records: list[ConsumeRecord] = []
            priced: list[tuple[Decimal, Decimal]] = []  # (units counted, spend delta) of the last build

            def companions(
                now: datetime,
                shares: Shares,
                layout: int,
                entities: tuple[str, ...],
                grants: GrantsPaid,
                *,
                seen: SpendState = seen,
                period_end: datetime = period_end,
                records: list[ConsumeRecord] = records,
                priced: list[tuple[Decimal, Decimal]] = priced,
            ) -> list[dict[str, Any]]:
                counted = sum((part for _shard, part in shares), ZERO)  # units grants paid are prepaid
                step = spend_step(price, seen.used_of(resource_type), counted)
                priced.append((counted, step.delta))
                where = spend_key(tenant_id, period_end)
                items = [
                    spend_update(self.repo.table, where, resource_type, step, cap, period_end, entity_id=entity_id)
                ]
                if key is not None:
                    built = LevelTaken(True, shares=shares, layout=layout, grants=grants)
                    estimate = granted_answer_at_levels(ctx, levels, built, remember=False)
                    record = replace(new_record(request, now, shares, layout), entities=entities)
                    records[:] = [replace(record, answer=replace(estimate, idempotency_key=key))]
                    items.append(ctx.repo.record_put_request(records[0]))
                return items

            taken = take_at_levels(ctx, levels, companions)
            if taken.granted:
                after = _after(seen, resource_type, *priced[-1], entity_id=entity_id)
                self._states.put((tenant_id, period_end), after)
                answer = granted_answer_at_levels(ctx, levels, taken)
                return answer if not records or records[0].answer is None else records[0].answer
            if taken.denial is not None:
                return replace(taken.denial, idempotency_key=key)
            if taken.existing_index == -1 and key is not None and taken.existing is not None:
                return replay(ctx, record_from_item(taken.existing), request)
            actual = state_from_item(taken.existing)
            self._states.put((tenant_id, period_end), actual)
            counted = priced[-1][0] if priced else request.quantity
            repriced = spend_step(price, actual.used_of(resource_type), counted)
            refused = refusal(cap, resource_type, actual, repriced.delta, entity_id)
            if refused is not None:
                raise SpendCapReachedError(refused)
        raise RateLimitedError("the spend is under heavy contention; retry shortly")

    def _answer(
        self,
        tenant_id: str,
        resource_type: str,
        quantity: Decimal,
        shares: Shares,
        layout: int,
        idempotency_key: str | None,
    ) -> EntitlementCheck:
        # A transaction returns no item: one read of the counter for the answer (stored for replays).
        ctx = self._ctx
        shard = shares[0][0] if shares else 0
        counter = ctx.repo.get_counter(tenant_id, resource_type, shard, layout)
        if counter is None:
            raise RuntimeError("counter vanished after a granted take")
        answer = granted(counter, quantity, ctx.enforcing, layout, shares, idempotency_key)
        if idempotency_key is not None:
            ctx.repo.save_answer(tenant_id, idempotency_key, answer)
        return answer

    def leg(
        self,
        tenant_id: str,
        resource_type: str,
        *,
        at: datetime | None = None,
        fresh: bool = False,
        entity_id: str | None = None,
    ) -> SpendLeg | None:
        """The spend item's part of a take or give-back of `resource_type` outside the consume path (a
        reservation, its settle, a release), in the period holding `at` (default now). None: the tenant has
        no cap or the plan does not price the resource (the write goes on without a spend item). `fresh`:
        start from the stored spend (a give-back must not be clamped on a guess). `entity_id`: the take or
        give-back is the entity's (its line moves too, and a take is held to its cap)."""
        if resource_type not in self._ctx.catalog.priced_resources:
            return None
        cap = self.cap_for(tenant_id)
        price = self.price_of(tenant_id, resource_type) if cap is not None else None
        if cap is None or price is None:
            return None
        _start, period_end = plan_period(plan_for(self._ctx, tenant_id), at or self._ctx.clock())
        if fresh:
            seen = self.repo.get_state(tenant_id, period_end)
        else:
            seen = self._states.get((tenant_id, period_end)) or SpendState()
        return SpendLeg(self, cap, price, tenant_id, resource_type, period_end, seen, entity_id=entity_id)

    def remember(self, tenant_id: str, period_end: datetime, state: SpendState) -> None:
        self._states.put((tenant_id, period_end), state)

    def state(self, tenant_id: str) -> tuple[datetime, SpendState]:
        """This period's end and its spend (strongly consistent)."""
        _start, period_end = plan_period(plan_for(self._ctx, tenant_id), self._ctx.clock())
        return period_end, self.repo.get_state(tenant_id, period_end)


def _after(
    seen: SpendState, resource: str, quantity: Decimal, delta: Decimal, *, entity_id: str | None = None
) -> SpendState:
    used = dict(seen.used)
    spent = dict(seen.spent)
    used[resource] = seen.used_of(resource) + quantity
    spent[resource] = seen.spent_of(resource) + delta
    by_entity = dict(seen.by_entity)
    if entity_id is not None:
        by_entity[entity_id] = seen.entity_spent(entity_id) + delta
    return replace(seen, used=used, spent=spent, total=seen.total + delta, by_entity=by_entity)


@dataclass
class SpendLeg:
    """The period's spend item inside one transaction of a take (`quantity` > 0) or a give-back (< 0) of
    one resource: priced at the state last seen, conditioned on it (`spend_update`), so the committed spend
    stays the rating of the committed usage. When the condition refuses, `reprice` reads the state the
    refusal returned and says whether the hard cap is what stands in the way."""

    caps: SpendCaps
    cap: SpendCap
    price: UsagePrice
    tenant_id: str
    resource_type: str
    period_end: datetime
    seen: SpendState
    entity_id: str | None = None
    _last: tuple[Decimal, Decimal] | None = None

    def item(self, quantity: Decimal) -> dict[str, object] | None:
        """The spend item's update for `quantity` units counted (negative: given back; a give-back is
        clamped to the usage seen). None when nothing changes."""
        if quantity < 0:
            quantity = -min(-quantity, self.seen.used_of(self.resource_type))
        if quantity == 0:
            self._last = None
            return None
        step = spend_step(self.price, self.seen.used_of(self.resource_type), quantity)
        self._last = (quantity, step.delta)
        key = spend_key(self.tenant_id, self.period_end)
        table, resource, cap = self.caps.repo.table, self.resource_type, self.cap
        return spend_update(table, key, resource, step, cap, self.period_end, entity_id=self.entity_id)

    @property
    def sent(self) -> bool:
        """Whether the last `item` built an update (so the transaction carried the spend item last)."""
        return self._last is not None

    def committed(self) -> None:
        """The transaction holding the last item committed: remember the state it left."""
        if self._last is not None:
            self.seen = _after(self.seen, self.resource_type, *self._last, entity_id=self.entity_id)
            self.caps.remember(self.tenant_id, self.period_end, self.seen)

    def reprice(self, existing: dict[str, object] | None, quantity: Decimal) -> CapRefusal | None:
        """The spend item refused at `existing` (its state then): priced again there, the hard cap's refusal
        of `quantity` more, if any."""
        self.seen = state_from_item(existing)
        self.caps.remember(self.tenant_id, self.period_end, self.seen)
        if quantity <= 0:
            return None
        step = spend_step(self.price, self.seen.used_of(self.resource_type), quantity)
        return refusal(self.cap, self.resource_type, self.seen, step.delta, self.entity_id)

    def reread(self) -> bool:
        """Read the stored spend again; True when it moved since the last item was priced."""
        fresh = self.caps.repo.get_state(self.tenant_id, self.period_end)
        moved = fresh != self.seen
        self.seen = fresh
        self.caps.remember(self.tenant_id, self.period_end, fresh)
        return moved

    def affordable(self, wanted: Decimal) -> Decimal:
        """How much of `wanted` the hard cap lets through at the state seen."""
        budget = budget_left(self.cap, self.resource_type, self.seen, self.entity_id)
        if budget is None:
            return wanted
        return affordable(self.price, self.seen.used_of(self.resource_type), wanted, budget)
