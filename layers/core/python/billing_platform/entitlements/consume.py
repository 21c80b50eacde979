"""Consume without an idempotency key: check and record a quantity atomically.

The hot path, with the counter's layout known: exactly one conditional UpdateItem
(`EntitlementRepository.consume`), which also checks and counts the plan's short windows (their marker as
this container last saw it on the counter: a stale one fails the condition once and the failure brings it
back). When its condition fails, `slow_path` decides why from the item DynamoDB returned with the failure,
and answers or names the layout to retry with. A keyed consume runs
in `idempotency` instead; nothing here knows of keys."""

from __future__ import annotations

from billing_platform.entitlements.answers import granted
from billing_platform.entitlements.context import MAX_ROUNDS, EntitlementContext
from billing_platform.entitlements.models import ConsumeRequest, EntitlementCheck
from billing_platform.entitlements.repository import counter_key, counter_pk
from billing_platform.entitlements.slow_path import slow_path
from billing_platform.errors import RateLimitedError


def consume(ctx: EntitlementContext, request: ConsumeRequest) -> EntitlementCheck:
    """`EntitlementService.consume` without a key, input already validated."""
    enforce = ctx.enforcing
    shards = ctx.layouts.get((request.tenant_id, request.resource_type)) or 1
    for _round in range(MAX_ROUNDS):
        now = ctx.clock()
        shard = ctx.rng.randrange(shards) if shards > 1 else 0
        key = counter_key(request.tenant_id, request.resource_type, shard, shards)
        windows = ctx.windows.get(counter_pk(request.tenant_id, request.resource_type, shard, shards)) or ""
        counter, old = ctx.repo.consume(key, request.quantity, now, enforce=enforce, windows=windows)
        if counter is not None:
            ctx.saw(counter)
            return granted(counter, request.quantity, enforce, shards, ((shard, request.quantity),), None)
        outcome = slow_path(ctx, request, old, shards=shards, now=now, draw_grants=True)
        if isinstance(outcome, EntitlementCheck):
            return outcome
        shards = outcome
    raise RateLimitedError("the quota is under heavy contention; retry shortly")
