"""Consume: check and record a quantity atomically.

Hot path (no idempotency key, layout known): exactly one conditional UpdateItem on the counter
(`EntitlementRepository.consume`). With an idempotency key the take, its record and its answer are one
transaction (`idempotency`: 1 request with the counter's state known to the container, else 2). When the
condition fails, `slow_path` decides why, using the item DynamoDB returned with the failure, and answers or
names the layout to retry with.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from billing_platform.entitlements.answers import granted
from billing_platform.entitlements.context import MAX_ROUNDS, EntitlementContext
from billing_platform.entitlements.idempotency import answer_keyed, consume_keyed, new_record, remember, replay
from billing_platform.entitlements.models import EntitlementCheck
from billing_platform.entitlements.repository import counter_key
from billing_platform.entitlements.slow_path import slow_path
from billing_platform.errors import RateLimitedError
from billing_platform.quantities import ONE


def consume(
    ctx: EntitlementContext,
    tenant_id: str,
    resource_type: str,
    quantity: Decimal = ONE,
    *,
    idempotency_key: str | None = None,
) -> EntitlementCheck:
    """`EntitlementService.consume`, input already validated."""
    check = _consume_rounds(ctx, tenant_id, resource_type, quantity, idempotency_key)
    if idempotency_key is None or check.allowed or check.replayed:
        return check
    denial = replace(check, idempotency_key=idempotency_key)
    record = replace(new_record(tenant_id, resource_type, quantity, ctx.clock(), (), 0, idempotency_key), answer=denial)
    if not ctx.repo.put_consume_record(record):
        existing = ctx.repo.get_consume_record(tenant_id, idempotency_key)
        if existing is not None:
            return replay(ctx, existing, resource_type, quantity)
    return denial


def _consume_rounds(
    ctx: EntitlementContext, tenant_id: str, resource_type: str, quantity: Decimal, idempotency_key: str | None
) -> EntitlementCheck:
    enforce = ctx.enforcing
    shards = ctx.layouts.get((tenant_id, resource_type)) or 1
    if idempotency_key is not None:
        shard = ctx.rng.randrange(shards) if shards > 1 else 0
        check = consume_keyed(ctx, tenant_id, resource_type, quantity, shard, shards, enforce, idempotency_key)
        if check is not None:
            return check
    for _round in range(MAX_ROUNDS):
        now = ctx.clock()
        if idempotency_key is not None:
            record = ctx.repo.get_consume_record(tenant_id, idempotency_key) if _round else None
            if record is not None:
                return replay(ctx, record, resource_type, quantity)
        shard = ctx.rng.randrange(shards) if shards > 1 else 0
        key = counter_key(tenant_id, resource_type, shard, shards)
        if idempotency_key is None:
            counter, old = ctx.repo.consume(key, quantity, now, enforce=enforce)
            if counter is not None:
                remember(ctx, counter)
                return granted(counter, quantity, enforce, shards, ((shard, quantity),), None)
        else:
            taken = ctx.repo.consume_once(
                key,
                quantity,
                now,
                enforce=enforce,
                record=new_record(
                    tenant_id, resource_type, quantity, now, ((shard, quantity),), shards, idempotency_key
                ),
            )
            if taken.granted:
                return answer_keyed(
                    ctx, tenant_id, resource_type, quantity, enforce, shards, ((shard, quantity),), idempotency_key
                )
            if taken.existing_record is not None:
                return replay(ctx, taken.existing_record, resource_type, quantity)
            if taken.conflict:
                continue
            old = taken.counter_item
        outcome = slow_path(
            ctx, tenant_id, resource_type, quantity, shards, old, now, enforce, idempotency_key, draw_grants=True
        )
        if isinstance(outcome, EntitlementCheck):
            return outcome
        shards = outcome
    raise RateLimitedError("the quota is under heavy contention; retry shortly")
