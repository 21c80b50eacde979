"""Consume and release for a take that names an entity (`entity_take`): the same contract as the tenant-only
paths (`consume`, `release`) at every level.

- Unkeyed consume: one transaction over the levels.
- Keyed consume: the levels and the consume record (with its answer) in one transaction: a retry with the
  same key finds the record and replays its answer; a denial is recorded too, so it replays the same.
- Release without a key: what each level has used, up to the quantity, given back in one transaction.
- Release with a key: exactly what that consume took, at the tenant's counters and at each entity it
  counted at, once (the record is marked released in the same transaction), within the period it was
  taken from.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing_platform.entities.models import TENANT_LEVEL
from billing_platform.entities.repository import limit_key
from billing_platform.entitlements import consume as consume_case
from billing_platform.entitlements import idempotency
from billing_platform.entitlements.context import MAX_ROUNDS, EntitlementContext
from billing_platform.entitlements.dal.consume_records import ConsumeRecord, record_from_item
from billing_platform.entitlements.entity_take import (
    GrantsPaid,
    LevelRequest,
    LevelTaken,
    Shares,
    chain_for,
    entities_of,
    granted_answer,
    take_at_levels,
)
from billing_platform.entitlements.models import ConsumeRequest, EntitlementCheck, check_from_counter
from billing_platform.entitlements.records import new_record, replay
from billing_platform.entitlements.repository import counter_key
from billing_platform.entitlements.views import live_counters, read_quota
from billing_platform.errors import NotFoundError, RateLimitedError, UnprocessableError
from billing_platform.instants import to_epoch
from billing_platform.levels import Level, commit, epoch
from billing_platform.quantities import ZERO


def consume_at_levels(ctx: EntitlementContext, req: LevelRequest, idempotency_key: str | None) -> EntitlementCheck:
    """Check and record `req.quantity` at every level, atomically; with a key, exactly once. An entity whose
    chain limits nothing costs nothing: the take is the tenant's own (the hot path's one UpdateItem)."""
    request = ConsumeRequest(req.tenant_id, req.resource_type, req.quantity, idempotency_key, req.entity_id)
    if not chain_for(ctx, req.tenant_id, req.entity_id, req.resource_type):
        flow = consume_case.consume if idempotency_key is None else idempotency.consume
        return replace(flow(ctx, request), entity_id=req.entity_id)
    if idempotency_key is None:
        taken = take_at_levels(ctx, req)
        if taken.granted:
            return granted_answer(ctx, req, taken)
        assert taken.denial is not None
        return taken.denial
    records: list[ConsumeRecord] = []

    def companions(
        now: datetime, shares: Shares, layout: int, entities: tuple[str, ...], grants: GrantsPaid
    ) -> list[dict[str, Any]]:
        record = replace(
            new_record(request, now, shares, layout),
            entities=entities,
        )
        estimate = granted_answer(
            ctx, req, LevelTaken(True, shares=shares, layout=layout, grants=grants), remember=False
        )
        record = replace(record, answer=replace(estimate, idempotency_key=idempotency_key))
        records[:] = [record]
        return [ctx.repo.record_put_request(record)]

    taken = take_at_levels(ctx, req, companions)
    if taken.existing is not None:
        return replay(ctx, record_from_item(taken.existing), request)
    if taken.granted:
        granted_answer(ctx, req, taken)  # the container's estimate moves on
        answer = records[0].answer
        assert answer is not None
        return answer
    assert taken.denial is not None
    denial = replace(taken.denial, idempotency_key=idempotency_key)
    record = new_record(request, ctx.clock(), (), 0)
    if not ctx.repo.put_consume_record(replace(record, answer=denial)):
        existing = ctx.repo.get_consume_record(req.tenant_id, idempotency_key)
        if existing is not None:
            return replay(ctx, existing, request)
    return denial


def release_at_levels(
    ctx: EntitlementContext, req: LevelRequest, quantity: Decimal | None, idempotency_key: str | None
) -> EntitlementCheck:
    """Give quota back at every level the entity's takes counted at."""
    if idempotency_key is not None:
        return _release_keyed(ctx, req, quantity, idempotency_key)
    if quantity is None:
        raise UnprocessableError("quantity is required without an idempotency key", code="invalid_quantity")
    given = _release_unkeyed(ctx, req, quantity)
    view = read_quota(ctx, req.tenant_id, req.resource_type)
    if view is None:
        raise UnprocessableError(f"{req.resource_type!r} is not in the tenant's plan", code="not_in_plan")
    return replace(check_from_counter(view, given, allowed=True, enforced=ctx.enforcing), entity_id=req.entity_id)


def _release_unkeyed(ctx: EntitlementContext, req: LevelRequest, quantity: Decimal) -> Decimal:
    """Give back min(quantity, what the tenant's quota and every limited level of the chain have used) in one
    transaction, each level conditioned on holding that much used in the period it was read in."""
    layout = ctx.layouts.get((req.tenant_id, req.resource_type)) or 1
    for _round in range(MAX_ROUNDS):
        now = ctx.clock()
        counters = live_counters(ctx, req.tenant_id, req.resource_type, layout)
        if not counters:
            return ZERO
        layout = counters[0].shards
        chain = chain_for(ctx, req.tenant_id, req.entity_id, req.resource_type, fresh=True)
        keys = [limit_key(req.tenant_id, e, req.resource_type) for e, _m in chain]
        items = {i["entity_id"]["S"]: i for i in entities_of(ctx).get_limit_items(keys)}
        live = [i for i in items.values() if int(i["period_end"]["N"]) > epoch(now)]
        give = min([quantity, sum((c.used for c in counters), ZERO), *(Decimal(i["used"]["N"]) for i in live)])
        if give <= 0:
            return ZERO
        levels: list[Level] = []
        left = give
        for counter in sorted(counters, key=lambda c: -c.used):
            part = min(left, counter.used)
            if part <= 0:
                continue
            key = counter_key(req.tenant_id, req.resource_type, counter.shard, counter.shards)
            levels.append(Level(TENANT_LEVEL, _give_back(ctx.repo._table, key, part, to_epoch(counter.period_end))))
            left -= part
        for item in live:
            key = limit_key(req.tenant_id, item["entity_id"]["S"], req.resource_type)
            levels.append(
                Level(item["entity_id"]["S"], _give_back(ctx.repo._table, key, give, int(item["period_end"]["N"])))
            )
        if commit(ctx.repo.client, levels).applied:
            return give
    raise RateLimitedError("the quota is under heavy contention; retry shortly")


def _give_back(table: str, key: dict[str, Any], quantity: Decimal, period_end: int) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": table,
            "Key": key,
            "UpdateExpression": "SET #rem = #rem + :q, #used = #used - :q",
            "ConditionExpression": "#used >= :q AND #pe = :pe",
            "ExpressionAttributeNames": {"#rem": "remaining", "#used": "used", "#pe": "period_end"},
            "ExpressionAttributeValues": {":q": {"N": format(quantity, "f")}, ":pe": {"N": str(period_end)}},
        }
    }


def entity_give_backs(ctx: EntitlementContext, record: ConsumeRecord) -> list[dict[str, Any]]:
    """The give-backs of a keyed consume at the entities it counted at: what it took, only while each is
    still in the period that contained the take."""
    taken = sum((q for _s, q in record.shards), ZERO)
    at = str(to_epoch(record.consumed_at))
    return [
        {
            "Update": {
                "TableName": ctx.repo._table,
                "Key": limit_key(record.tenant_id, entity_id, record.resource_type),
                "UpdateExpression": "SET #rem = #rem + :q, #used = #used - :q",
                "ConditionExpression": "#used >= :q AND #ps <= :at AND #pe > :at",
                "ExpressionAttributeNames": {
                    "#rem": "remaining",
                    "#used": "used",
                    "#ps": "period_start",
                    "#pe": "period_end",
                },
                "ExpressionAttributeValues": {":q": {"N": format(taken, "f")}, ":at": {"N": at}},
            }
        }
        for entity_id in record.entities
    ]


def _release_keyed(
    ctx: EntitlementContext, req: LevelRequest, quantity: Decimal | None, idempotency_key: str
) -> EntitlementCheck:
    record = ctx.repo.get_consume_record(req.tenant_id, idempotency_key)
    if record is None:
        raise NotFoundError(f"no consume with idempotency key {idempotency_key!r}", code="unknown_consume")
    if record.resource_type != req.resource_type or (quantity is not None and quantity != record.quantity):
        raise UnprocessableError(
            f"idempotency key {idempotency_key!r} consumed {record.quantity} {record.resource_type}",
            code="resource_mismatch",
        )
    released = False
    if not record.released and record.shards:
        released = ctx.repo.release_once(record, entity_give_backs(ctx, record))
    view = read_quota(ctx, req.tenant_id, req.resource_type)
    if view is None:
        raise UnprocessableError(f"{req.resource_type!r} is not in the tenant's plan", code="not_in_plan")
    given = sum((q for _s, q in record.shards), ZERO) if released else ZERO
    answer = check_from_counter(view, given, allowed=True, enforced=ctx.enforcing)
    return replace(answer, replayed=not released, idempotency_key=idempotency_key, entity_id=req.entity_id)
