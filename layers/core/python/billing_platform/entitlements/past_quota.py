"""A take the hard quota alone cannot cover: the period quota, then the tenant's live grants, as one
transaction (`billing_platform.grants.draw`).

Reached only from the slow path, after the hot path's single UpdateItem was refused and the quota (every
shard of it) was seen short, so a take the quota covers never pays for this. Each round reads what it
needs (the counters, unless the caller just read them, and the grants), plans and commits; a cancelled
transaction changed nothing and the round starts over. A denial is given only when the quota and the live
grants read in the same round are together short of the quantity. Anything other than plain exhaustion
(a period over, a suspension, a layout change) goes back to the caller's loop, which knows those.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from functools import partial
from typing import Any

from billing_platform.entitlements.context import MAX_ROUNDS, EntitlementContext
from billing_platform.entitlements.idempotency import new_record, replay
from billing_platform.entitlements.models import (
    DenyReason,
    EntitlementCheck,
    QuotaCounter,
    check_from_counter,
    combine_shards,
    layout_live,
)
from billing_platform.entitlements.repository import ConsumeRecord
from billing_platform.errors import RateLimitedError
from billing_platform.grants.draw import drawn_from
from billing_platform.grants.models import DrawPlan

logger = logging.getLogger(__name__)


def take_past_quota(
    ctx: EntitlementContext,
    tenant_id: str,
    resource_type: str,
    quantity: Decimal,
    shards: int,
    seen: list[QuotaCounter] | None,
    idempotency_key: str | None,
) -> EntitlementCheck | int:
    """Serve `quantity` from what the hard quota has left plus live grants (see the module docstring).
    Returns the answer, or the layout for the caller to retry with."""
    counters = seen
    for round_ in range(MAX_ROUNDS):
        now = ctx.clock()
        if counters is None:
            counters = ctx.repo.get_layout(tenant_id, resource_type, shards)
        if not layout_live(counters, shards, now):
            return shards  # a period over, a suspension, a new layout: the caller's loop handles it
        total = combine_shards(counters) if shards > 1 else counters[0]
        if total.remaining >= quantity:
            return shards  # the quota covers it after all (a release, a rollover): the hot path again
        paid = tuple((c.shard, c.remaining) for c in counters if c.remaining > 0)
        answer_of = partial(_granted_answer, total, paid, quantity, idempotency_key)
        record_put = None
        if idempotency_key is not None:
            record = new_record(tenant_id, resource_type, quantity, now, paid, shards, idempotency_key)
            record_put = partial(_record_put, ctx, record, answer_of)
        outcome = ctx.grant_draw.take(counters, quantity, now, record_put=record_put)
        if outcome.short:
            logger.info(
                "quota and grants exhausted",
                extra={
                    "tenant_id": tenant_id,
                    "resource_type": resource_type,
                    "remaining": str(total.remaining),
                    "grant_remaining": str(outcome.grant_balance),
                },
            )
            denial = check_from_counter(total, quantity, allowed=False, reason=DenyReason.EXHAUSTED)
            return replace(denial, grant_remaining=outcome.grant_balance)
        if outcome.granted and outcome.plan is not None:
            return answer_of(outcome.plan, outcome.grant_balance)
        if outcome.existing_record and idempotency_key is not None:
            existing = ctx.repo.get_consume_record(tenant_id, idempotency_key)
            if existing is not None:
                return replay(ctx, existing, resource_type, quantity)
        counters = None
        # Something changed under the plan (or a concurrent transaction held an item): back off a little.
        time.sleep(ctx.rng.uniform(0, 0.002 * (round_ + 1)))
    raise RateLimitedError("the quota and its grants are under heavy contention; retry shortly")


def _granted_answer(
    total: QuotaCounter,
    paid: tuple[tuple[int, Decimal], ...],
    quantity: Decimal,
    idempotency_key: str | None,
    plan: DrawPlan,
    balance: Decimal,
) -> EntitlementCheck:
    """The answer to a take committed per `plan`: the quota as it is after, what each grant paid, and
    what the live grants hold after."""
    after = replace(total, used=total.used + plan.from_quota, remaining=total.remaining - plan.from_quota)
    return replace(
        check_from_counter(after, quantity, allowed=True, idempotency_key=idempotency_key),
        shards_used=paid,
        grants_used=drawn_from(plan),
        grant_remaining=balance - plan.grant_total,
    )


def _record_put(
    ctx: EntitlementContext,
    record: ConsumeRecord,
    answer_of: Callable[[DrawPlan, Decimal], EntitlementCheck],
    plan: DrawPlan,
    balance: Decimal,
) -> dict[str, Any]:
    # The answer goes in with the record, in the same transaction: every replay of the key gets exactly it.
    return ctx.repo.record_put_request(replace(record, answer=answer_of(plan, balance)))
