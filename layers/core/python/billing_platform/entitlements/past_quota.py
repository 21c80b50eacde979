"""A take the hard quota alone cannot cover: the period quota, then the tenant's live grants, as one
transaction (`draw`).

Reached only from the slow path, after the hot path's single UpdateItem was refused and the quota (every
shard of it) was seen short, so a take the quota covers never pays for this. Each round reads what it
needs (the counters, unless the caller just read them, and the grants), plans and commits; a cancelled
transaction changed nothing and the round starts over. A denial is given only when the quota and the live
grants read in the same round are together short of the quantity. Anything other than plain exhaustion
(a period over, a suspension, a layout change) goes back to the caller's loop, which knows those.

The draw reads the tenant's grants for the resource (strongly consistent), plans the take with
`plan_draw` (everything the quota still has, then live grants in draw order) and commits ONE
`TransactWriteItems`:

* every counter shard the plan saw is conditioned on being exactly as seen (`remaining = :seen`, still
  active, period not over) and gives all it had: so a grant is never drawn while the quota still holds
  something (a release or a rollover meanwhile cancels the plan, and the retry finds the quota again); a
  counter with the plan's short windows also counts the whole take in each window, conditioned on its room
  (a window caps what is taken, whoever pays it);
* every grant drawn is conditioned on being active, unexpired at `now` and holding its take: an expired
  grant stops counting at its expiry instant, and `remaining` never goes below zero;
* an idempotent consume's record, or a reservation (`take`), goes in the same transaction, last.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

from billing_platform.entitlements.context import MAX_ROUNDS, EntitlementContext
from billing_platform.entitlements.models import (
    ConsumeRequest,
    DenyReason,
    EntitlementCheck,
    QuotaCounter,
    check_from_counter,
    combine_shards,
    layout_live,
)
from billing_platform.entitlements.records import new_record, replay
from billing_platform.entitlements.repository import ConsumeRecord
from billing_platform.errors import RateLimitedError
from billing_platform.grants.models import DrawPlan, live_balance, plan_draw
from billing_platform.quantities import ZERO

logger = logging.getLogger(__name__)
# Builds the item (or items) written with a draw (a consume record, a reservation, a spend item) once the
# plan is known.
RecordPut = Callable[[DrawPlan, Decimal], dict[str, Any] | list[dict[str, Any]]]


@dataclass(frozen=True)
class DrawOutcome:
    """`granted`: committed per `plan`. `short`: quota + live grants cannot cover the take (deny).
    `conflict`: the transaction was cancelled (something changed, or a concurrent transaction held an
    item): nothing was written, plan again. `grant_balance`: the live grants' balance read (before)."""

    granted: bool
    plan: DrawPlan | None
    grant_balance: Decimal
    short: bool = False
    conflict: bool = False
    existing_record: bool = False  # the item written with the draw exists: its key was used already
    existing_item: dict[str, Any] | None = None  # that item, when its put asked for it (ALL_OLD)
    record_index: int = 0  # which of the items `record_put` gave failed its condition


def draw(
    ctx: EntitlementContext,
    counters: list[QuotaCounter],
    quantity: Decimal,
    now: datetime,
    *,
    record_put: RecordPut | None = None,
) -> DrawOutcome:
    """Take `quantity` from `counters` (every shard of one hard quota, as just read) and the tenant's live
    grants, all or nothing (see the module docstring). `record_put(plan, grant_balance)` gives the item to
    commit last in the same transaction."""
    first = counters[0]
    grants = ctx.tenant_grants.list(first.tenant_id, first.resource_type)
    balance = live_balance(grants, now)
    quota_left = sum((max(ZERO, c.remaining) for c in counters), ZERO)
    plan = plan_draw(quota_left, grants, quantity, now)
    if plan is None:
        return DrawOutcome(granted=False, plan=None, grant_balance=balance, short=True)
    if not plan.from_grants:
        # The quota covers the take after all (a release or a rollover since the caller read it).
        return DrawOutcome(granted=False, plan=plan, grant_balance=balance, conflict=True)
    items = [ctx.repo.drain_request(c, now, quantity) for c in counters]
    items += [ctx.tenant_grants.draw_request(grant, take, now) for grant, take in plan.from_grants]
    records_from = len(items)
    if record_put is not None:
        made = record_put(plan, balance)
        items.extend(made if isinstance(made, list) else [made])
    refused = ctx.repo.commit(items)
    if refused is None:
        return DrawOutcome(granted=True, plan=plan, grant_balance=balance)
    failed = sorted(i for i in refused.failed if i >= records_from)
    return DrawOutcome(
        granted=False,
        plan=plan,
        grant_balance=balance,
        conflict=True,
        existing_record=bool(failed),
        existing_item=refused.item(failed[0]) if failed else None,
        record_index=failed[0] - records_from if failed else 0,
    )


def take_past_quota(
    ctx: EntitlementContext, request: ConsumeRequest, seen: list[QuotaCounter] | None, *, shards: int
) -> EntitlementCheck | int:
    """Serve the request from what the hard quota (`seen`, every shard of a `shards`-wide layout, as just
    read; None: read them) has left plus live grants (see the module docstring). Returns the answer, or
    the layout for the caller to retry with."""
    tenant_id, resource_type, quantity = request.tenant_id, request.resource_type, request.quantity
    idempotency_key = request.idempotency_key
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
            record = new_record(request, now, paid, shards)
            record_put = partial(_record_put, ctx, record, answer_of)
        outcome = draw(ctx, counters, quantity, now, record_put=record_put)
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
                return replay(ctx, existing, request)
        if counters[0].windows:
            return shards  # a window may be what refused it: the caller's loop decides (windows.window_step)
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
        grants_used=plan.drawn(),
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
