"""Release: give quota back (work that failed). With an idempotency key exactly what that consume took,
once, within its period; without, up to a quantity, never below zero used. A capped tenant's release
gives the rated cost back on the period's spend in the same transaction as each counter's give-back
(`SpendGiveBack`, built by `capped`)."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from billing_platform.entitlements.answers import not_in_plan
from billing_platform.entitlements.context import MAX_ROUNDS, EntitlementContext
from billing_platform.entitlements.dal.consume_records import ConsumeRecord
from billing_platform.entitlements.models import (
    EntitlementCheck,
    QuotaCounter,
    ReleaseRequest,
    check_from_counter,
    same_period,
)
from billing_platform.entitlements.repository import counter_key
from billing_platform.entitlements.views import live_counters, read_quota
from billing_platform.errors import NotFoundError, RateLimitedError, UnprocessableError
from billing_platform.quantities import ZERO

logger = logging.getLogger(__name__)


class SpendGiveBack(Protocol):
    """The period's spend item inside a release's transactions (`capped.SpendLeg`)."""

    def item(self, quantity: Decimal) -> dict[str, Any] | None:
        """The spend item's update for `quantity` units counted (negative: given back)."""

    def committed(self) -> None:
        """The transaction holding the last item committed."""

    def reread(self) -> bool:
        """Read the stored spend again; True when it moved since the last item was priced."""


def release(ctx: EntitlementContext, request: ReleaseRequest, spend: SpendGiveBack | None = None) -> EntitlementCheck:
    """`EntitlementService.release`, input already validated."""
    if request.idempotency_key is not None:
        return _release_keyed(ctx, request, request.idempotency_key, spend)
    if request.quantity is None:
        raise UnprocessableError("quantity is required without an idempotency key", code="invalid_quantity")
    return release_taken(
        ctx,
        request.tenant_id,
        request.resource_type,
        ((-1, request.quantity),),
        period_end=request.period_end,
        spend=spend,
    )


def release_taken(
    ctx: EntitlementContext,
    tenant_id: str,
    resource_type: str,
    shards_used: tuple[tuple[int, Decimal], ...],
    *,
    period_end: datetime | None = None,
    spend: SpendGiveBack | None = None,
) -> EntitlementCheck:
    """`EntitlementService.release_taken`."""
    wanted = sum((q for _s, q in shards_used), ZERO)
    given = ZERO
    layout = ctx.layouts.get((tenant_id, resource_type)) or 1
    for _round in range(MAX_ROUNDS):
        counters = live_counters(ctx, tenant_id, resource_type, layout)
        if counters is None:
            return not_in_plan(tenant_id, resource_type, wanted, ctx.enforcing)
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
            if spend is None:
                after, _old = ctx.repo.release(key, take, period_end=counter.period_end)
                done = after is not None
            else:
                done = _release_with_spend(ctx, key, take, counter.period_end, spend)
            if not done:
                raced = True
                break
            given += take
        if not raced:
            break
    view = read_quota(ctx, tenant_id, resource_type)
    if view is None:
        return not_in_plan(tenant_id, resource_type, given, ctx.enforcing)
    return check_from_counter(view, given, allowed=True, enforced=ctx.enforcing)


def _release_with_spend(
    ctx: EntitlementContext, key: dict[str, Any], quantity: Decimal, period_end: datetime, spend: SpendGiveBack
) -> bool:
    """One counter's give-back and the spend's, in one transaction. False: the counter refused (raced)."""
    for _round in range(MAX_ROUNDS):
        extra = spend.item(-quantity)
        items = [ctx.repo.release_request(key, quantity, period_end=period_end)] + ([extra] if extra else [])
        refused = ctx.repo.commit(items)
        if refused is None:
            spend.committed()
            return True
        if 0 in refused.failed:
            return False
        if 1 in refused.failed:
            spend.reread()  # priced at a usage the spend item no longer has
    raise RateLimitedError("the spend is under heavy contention; retry shortly")


def _release_once(ctx: EntitlementContext, record: ConsumeRecord, spend: SpendGiveBack | None) -> bool:
    """A keyed consume's give-back, once; a capped tenant's with the spend's give-back in its transaction."""
    if spend is None:
        return ctx.repo.release_once(record)
    counted = sum((q for _s, q in record.shards), ZERO)
    for _round in range(MAX_ROUNDS):
        extra = spend.item(-counted)
        if ctx.repo.release_once(record, [extra] if extra else None):
            spend.committed()
            return True
        fresh = ctx.repo.get_consume_record(record.tenant_id, record.idempotency_key)
        if fresh is None or fresh.released or not spend.reread():
            return False  # released meanwhile, or the counter refused it (its period moved on)
    raise RateLimitedError("the spend is under heavy contention; retry shortly")


def _release_keyed(
    ctx: EntitlementContext, request: ReleaseRequest, idempotency_key: str, spend: SpendGiveBack | None
) -> EntitlementCheck:
    tenant_id, resource_type, quantity = request.tenant_id, request.resource_type, request.quantity
    record = ctx.repo.get_consume_record(tenant_id, idempotency_key)
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
    released = False if record.released or not record.shards else _release_once(ctx, record, spend)
    if not released:
        logger.info("release not applied", extra={"tenant_id": tenant_id, "already_released": record.released})
    view = read_quota(ctx, tenant_id, resource_type)
    if view is None:
        return not_in_plan(tenant_id, resource_type, ZERO, ctx.enforcing)
    # What the quota paid (a take drawn partly from grants gives back only that: grants never refill).
    given = sum((q for _s, q in record.shards), ZERO) if released else ZERO
    return replace(
        check_from_counter(view, given, allowed=True, enforced=ctx.enforcing),
        replayed=not released,
        idempotency_key=idempotency_key,
    )
