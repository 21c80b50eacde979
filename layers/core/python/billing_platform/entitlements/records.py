"""The consume record of a keyed take: made with the take (`new_record`), answered when the transaction
that wrote it returned nothing to answer from (`answer_keyed`), and replayed to every retry of its key
(`replay`: the first answer, a denial included; a different request under the same key is a 422).

Shared by the keyed flow (`idempotency`) and the slow paths a keyed take can reach (`slow_path`,
`past_quota`), which write the record in their own transactions."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from billing_platform.entitlements.answers import granted
from billing_platform.entitlements.context import EntitlementContext
from billing_platform.entitlements.models import ConsumeRequest, EntitlementCheck
from billing_platform.entitlements.repository import ConsumeRecord
from billing_platform.errors import UnprocessableError

Shares = tuple[tuple[int, Decimal], ...]  # (shard, quantity taken from it)
# A replay of an unpinned take waits for the first attempt to store its answer: 10 ms doubling to 640 ms,
# 1.3 s in all, then answers from the counter as it is now (the first attempt died in between).
REPLAY_WAITS_SECONDS = tuple(0.01 * 2**n for n in range(7))


def new_record(request: ConsumeRequest, now: datetime, shares: Shares, layout: int) -> ConsumeRecord:
    """The record of `request` taken at `now` from `shares` of a `layout`-wide quota (no answer yet)."""
    if request.idempotency_key is None:
        raise ValueError("a consume record needs an idempotency key")
    return ConsumeRecord(
        tenant_id=request.tenant_id,
        idempotency_key=request.idempotency_key,
        resource_type=request.resource_type,
        quantity=request.quantity,
        consumed_at=now,
        shards=shares,
        layout=layout,
    )


def answer_keyed(ctx: EntitlementContext, request: ConsumeRequest, shares: Shares, layout: int) -> EntitlementCheck:
    """The answer to a keyed take its transaction committed, stored on its record."""
    if request.idempotency_key is None:
        raise ValueError("only a keyed take has an answer to store")
    # A transaction returns no item: read the counter once for the answer, then store the answer
    # so every replay of this key gets the same one.
    counter = ctx.repo.get_counter(request.tenant_id, request.resource_type, shares[0][0], layout)
    if counter is None:
        raise RuntimeError("counter vanished after a granted consume")
    check = granted(counter, request.quantity, ctx.enforcing, layout, shares, request.idempotency_key)
    ctx.repo.save_answer(request.tenant_id, request.idempotency_key, check)
    return check


def replay(ctx: EntitlementContext, record: ConsumeRecord, request: ConsumeRequest) -> EntitlementCheck:
    """The answer `record` holds, for a retry of its key; 422 when the retry asks for something else."""
    if (record.resource_type, record.quantity) != (request.resource_type, request.quantity):
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
        shard = record.shards[0][0] if record.shards else 0
        counter = ctx.repo.get_counter(record.tenant_id, record.resource_type, shard, record.layout)
        if counter is None:
            raise RuntimeError("consume record without a counter")
        # The counter as it is now, not as the take left it: said so.
        answer = replace(
            granted(counter, record.quantity, ctx.enforcing, record.layout, record.shards, None), approximate=True
        )
    return replace(answer, replayed=True, idempotency_key=record.idempotency_key, shards_used=record.shards)
