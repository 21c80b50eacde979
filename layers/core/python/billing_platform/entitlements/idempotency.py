"""Idempotent consumes: the record a keyed take writes, the answer stored with it, and the replay a
retried key gets (the first answer, a denial included; a different request under the same key is a 422).

Requests per keyed consume (`consume_keyed`): the take and its record are one transaction, and a
transaction returns no values, so the answer (the counter after the take) must be known before it is
sent. It is when the counter's state is: from this container's last look at it (1 request), else from one
strongly consistent read of the counter and the key's record together (2). The transaction pins that
state in its condition, so the stored answer is exact or nothing is written. A retry finds the record in
that same read or in the transaction's refusal (1). A counter that keeps moving under other writers falls
back to `answer_keyed` (take, read, store the answer: 3)."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from billing_platform.entitlements.answers import granted
from billing_platform.entitlements.context import EntitlementContext
from billing_platform.entitlements.models import EntitlementCheck, QuotaCounter, counter_after
from billing_platform.entitlements.repository import ConsumeRecord, counter_from_item, counter_key, counter_pk
from billing_platform.errors import UnprocessableError

# A replay of an unpinned take waits for the first attempt to store its answer: 10 ms doubling to 640 ms,
# 1.3 s in all, then answers from the counter as it is now (the first attempt died in between).
REPLAY_WAITS_SECONDS = tuple(0.01 * 2**n for n in range(7))
# Pinned attempts before the unpinned fallback: each refusal brings the counter's fresh state back.
PINNED_ATTEMPTS = 2


def new_record(
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


def consume_keyed(
    ctx: EntitlementContext,
    tenant_id: str,
    resource_type: str,
    quantity: Decimal,
    shard: int,
    shards: int,
    enforce: bool,
    idempotency_key: str,
) -> EntitlementCheck | None:
    """A keyed take whose answer is stored in the same transaction (see the module's docstring).
    None: not decided here (no counter, a counter that does not allow the take, one that kept moving);
    the caller takes the general path, which provisions, rolls, denies or answers afterwards."""
    pk = counter_pk(tenant_id, resource_type, shard, shards)
    expected = ctx.counters.get(pk)
    if expected is None:
        expected, record = ctx.repo.get_counter_and_record(
            counter_key(tenant_id, resource_type, shard, shards), tenant_id, idempotency_key
        )
        if record is not None:
            return replay(ctx, record, resource_type, quantity)
    for _attempt in range(PINNED_ATTEMPTS):
        now = ctx.clock()
        if expected is None or not expected.allows(quantity, now, enforce=enforce):
            return None
        after = counter_after(expected, quantity)
        answer = granted(after, quantity, enforce, shards, ((shard, quantity),), idempotency_key)
        record = replace(
            new_record(tenant_id, resource_type, quantity, now, ((shard, quantity),), shards, idempotency_key),
            answer=answer,
        )
        taken = ctx.repo.consume_once_pinned(expected, quantity, now, enforce=enforce, record=record)
        if taken.granted:
            ctx.counters.put(pk, after)
            return answer
        if taken.existing_record is not None:
            return replay(ctx, taken.existing_record, resource_type, quantity)
        ctx.counters.invalidate(pk)
        if taken.counter_item is None:
            return None
        expected = counter_from_item(taken.counter_item)
    return None


def remember(ctx: EntitlementContext, counter: QuotaCounter) -> None:
    """Keep the state a counter was just seen in (the hot path's own answer) for the next keyed take."""
    ctx.counters.put(counter_pk(counter.tenant_id, counter.resource_type, counter.shard, counter.shards), counter)


def answer_keyed(
    ctx: EntitlementContext,
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
    counter = ctx.repo.get_counter(tenant_id, resource_type, shard, shards)
    if counter is None:
        raise RuntimeError("counter vanished after a granted consume")
    check = granted(counter, quantity, enforce, shards, shards_used, idempotency_key)
    ctx.repo.save_answer(tenant_id, idempotency_key, check)
    return check


def replay(ctx: EntitlementContext, record: ConsumeRecord, resource_type: str, quantity: Decimal) -> EntitlementCheck:
    if (record.resource_type, record.quantity) != (resource_type, quantity):
        # Answering the first request's result to a different request would hide a client bug.
        raise UnprocessableError(
            f"idempotency key {record.idempotency_key!r} was used for {record.quantity} {record.resource_type}",
            code="idempotency_key_reused",
        )
    answer = record.answer
    if answer is None:
        # The first attempt is between its transaction and storing its answer: give it a moment.
        for wait in REPLAY_WAITS_SECONDS:
            time.sleep(wait)
            stored = ctx.repo.get_consume_record(record.tenant_id, record.idempotency_key)
            if stored is not None and stored.answer is not None:
                answer = stored.answer
                break
    if answer is None:
        counter = ctx.repo.get_counter(record.tenant_id, record.resource_type, *first_shard(record))
        if counter is None:
            raise RuntimeError("consume record without a counter")
        # The counter as it is now, not as the take left it: said so.
        answer = replace(
            granted(counter, record.quantity, ctx.enforcing, record.layout, record.shards, None), approximate=True
        )
    return replace(answer, replayed=True, idempotency_key=record.idempotency_key, shards_used=record.shards)


def first_shard(record: ConsumeRecord) -> tuple[int, int]:
    shard = record.shards[0][0] if record.shards else 0
    return shard, record.layout
