"""Idempotent consumes: the record a keyed take writes, the answer stored with it, and the replay a
retried key gets (the first answer, a denial included; a different request under the same key is a 422)."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from billing_platform.entitlements.answers import granted
from billing_platform.entitlements.context import EntitlementContext
from billing_platform.entitlements.models import EntitlementCheck
from billing_platform.entitlements.repository import ConsumeRecord
from billing_platform.errors import UnprocessableError

REPLAY_WAIT_SECONDS = 0.02


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
        for _ in range(5):
            time.sleep(REPLAY_WAIT_SECONDS)
            stored = ctx.repo.get_consume_record(record.tenant_id, record.idempotency_key)
            if stored is not None and stored.answer is not None:
                answer = stored.answer
                break
    if answer is None:
        counter = ctx.repo.get_counter(record.tenant_id, record.resource_type, *first_shard(record))
        if counter is None:
            raise RuntimeError("consume record without a counter")
        answer = granted(counter, record.quantity, ctx.enforcing, record.layout, record.shards, None)
    return replace(answer, replayed=True, idempotency_key=record.idempotency_key, shards_used=record.shards)


def first_shard(record: ConsumeRecord) -> tuple[int, int]:
    shard = record.shards[0][0] if record.shards else 0
    return shard, record.layout
