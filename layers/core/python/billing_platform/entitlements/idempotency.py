"""Consume with an idempotency key: every retry of the key gets the first answer, a denial included, and
the quantity is taken once. This module owns the keyed flow from start to end, one state after another:

1. pinned: the take and its record (carrying its answer) are one transaction, and a transaction returns
   no values, so the answer (the counter after the take) must be known before it is sent. It is when the
   counter's state is: from this container's last look at it (1 request), else from one strongly
   consistent read of the counter and the key's record together (2; a record found there is replayed).
   The transaction pins that state in its condition, so the stored answer is exact or nothing is written;
   a refusal brings the counter's fresh state back for one more pinned attempt.
2. unpinned, when the counter keeps moving or is not there: take and record in one transaction, then
   read the counter and store the answer (3). A round after the first looks for the record first (an
   earlier round may have committed); a failed condition goes to `slow_path`, as an unkeyed take's does.
3. a denial is stored under the key too, so its retries are denied alike.

A retry finds the record in the read of step 1 or in the transaction's refusal (1 request), and gets
`records.replay`. The unkeyed flow (`consume`) never comes here."""

from __future__ import annotations

from dataclasses import replace

from billing_platform.entitlements.answers import granted
from billing_platform.entitlements.context import MAX_ROUNDS, EntitlementContext
from billing_platform.entitlements.models import ConsumeRequest, EntitlementCheck, counter_after
from billing_platform.entitlements.records import answer_keyed, new_record, replay
from billing_platform.entitlements.repository import counter_from_item, counter_key, counter_pk
from billing_platform.entitlements.slow_path import slow_path
from billing_platform.errors import RateLimitedError

# Pinned attempts before the unpinned flow: each refusal brings the counter's fresh state back.
PINNED_ATTEMPTS = 2


def consume(ctx: EntitlementContext, request: ConsumeRequest) -> EntitlementCheck:
    """`EntitlementService.consume` with a key, input already validated."""
    _key(request)
    shards = ctx.layouts.get((request.tenant_id, request.resource_type)) or 1
    check = _pinned(ctx, request, shards)
    if check is None:
        check = _unpinned(ctx, request, shards)
    if check.allowed or check.replayed:
        return check
    return _store_denial(ctx, request, check)


def _pinned(ctx: EntitlementContext, request: ConsumeRequest, shards: int) -> EntitlementCheck | None:
    """Step 1. None: not decided here (no counter, one that does not allow the take, one that kept
    moving); the unpinned flow provisions, rolls, denies or answers."""
    shard = ctx.rng.randrange(shards) if shards > 1 else 0
    pk = counter_pk(request.tenant_id, request.resource_type, shard, shards)
    expected = ctx.counters.get(pk)
    if expected is None:
        key = counter_key(request.tenant_id, request.resource_type, shard, shards)
        expected, record = ctx.repo.get_counter_and_record(key, request.tenant_id, _key(request))
        if record is not None:
            return replay(ctx, record, request)
    shares = ((shard, request.quantity),)
    for _attempt in range(PINNED_ATTEMPTS):
        now = ctx.clock()
        if expected is None or not expected.allows(request.quantity, now, enforce=ctx.enforcing):
            return None
        after = counter_after(expected, request.quantity)
        answer = granted(after, request.quantity, ctx.enforcing, shards, shares, request.idempotency_key)
        record = replace(new_record(request, now, shares, shards), answer=answer)
        taken = ctx.repo.consume_once_pinned(expected, request.quantity, now, enforce=ctx.enforcing, record=record)
        if taken.granted:
            ctx.counters.put(pk, after)
            return answer
        if taken.existing_record is not None:
            return replay(ctx, taken.existing_record, request)
        ctx.counters.invalidate(pk)
        if taken.counter_item is None:
            return None
        expected = counter_from_item(taken.counter_item)
    return None


def _unpinned(ctx: EntitlementContext, request: ConsumeRequest, shards: int) -> EntitlementCheck:
    """Step 2."""
    for round_ in range(MAX_ROUNDS):
        now = ctx.clock()
        if round_:
            record = ctx.repo.get_consume_record(request.tenant_id, _key(request))
            if record is not None:
                return replay(ctx, record, request)
        shard = ctx.rng.randrange(shards) if shards > 1 else 0
        shares = ((shard, request.quantity),)
        key = counter_key(request.tenant_id, request.resource_type, shard, shards)
        record = new_record(request, now, shares, shards)
        windows = ctx.windows.get(counter_pk(request.tenant_id, request.resource_type, shard, shards)) or ""
        taken = ctx.repo.consume_once(key, request.quantity, now, enforce=ctx.enforcing, record=record, windows=windows)
        if taken.granted:
            return answer_keyed(ctx, request, shares, shards)
        if taken.existing_record is not None:
            return replay(ctx, taken.existing_record, request)
        if taken.conflict:
            continue
        outcome = slow_path(ctx, request, taken.counter_item, shards=shards, now=now, draw_grants=True)
        if isinstance(outcome, EntitlementCheck):
            return outcome
        shards = outcome
    raise RateLimitedError("the quota is under heavy contention; retry shortly")


def _store_denial(ctx: EntitlementContext, request: ConsumeRequest, denial: EntitlementCheck) -> EntitlementCheck:
    """Step 3: the denial becomes the key's answer, unless a concurrent attempt stored one first."""
    denial = replace(denial, idempotency_key=request.idempotency_key)
    record = replace(new_record(request, ctx.clock(), (), 0), answer=denial)
    if not ctx.repo.put_consume_record(record):
        existing = ctx.repo.get_consume_record(request.tenant_id, _key(request))
        if existing is not None:
            return replay(ctx, existing, request)
    return denial


def _key(request: ConsumeRequest) -> str:
    if request.idempotency_key is None:
        raise ValueError("the keyed flow needs an idempotency key")
    return request.idempotency_key
