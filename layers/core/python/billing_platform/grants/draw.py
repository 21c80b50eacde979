"""The slow consume path past a hard quota: one take spanning the period quota and the tenant's grants.

Only a take the hot path refused comes here (the quota alone is short). The tenant's grants for the
resource are read (strongly consistent) and the take is planned with `plan_draw`: everything the quota
still has, then live grants in draw order. The plan commits as ONE `TransactWriteItems`:

* every counter shard the plan saw is conditioned on being exactly as seen (`remaining = :seen`, still
  active, period not over) and gives all it had: so a grant is never drawn while the quota still holds
  something (a release or a rollover meanwhile cancels the plan, and the caller's retry finds the
  quota again, not a grant);
* every grant drawn is conditioned on being active, unexpired at `now` and holding its take: an expired
  grant stops counting at its expiry instant, and `remaining` never goes below zero;
* an idempotent consume's record goes in the same transaction.

A cancelled transaction changed nothing; the caller re-reads and plans again. A denial is given only when
the quota and the live grants read together are short.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from billing_platform.entitlements.models import ZERO, CounterState, QuotaCounter, to_epoch
from billing_platform.entitlements.repository import counter_key
from billing_platform.grants.models import DrawPlan, live_balance, plan_draw
from billing_platform.grants.repository import GrantRepository

Item = dict[str, Any]


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
    existing_record: bool = False  # the idempotent consume's record exists: its key was used already
    existing_item: Item | None = None  # that record's item, when its put asked for it (ALL_OLD)
    record_index: int = 0  # which of the record items failed, when `record_put` gave several


class GrantDraw:
    """Plans and commits takes over quota counters and grants (see the module docstring)."""

    def __init__(self, grants: GrantRepository, table_name: str) -> None:
        self._grants = grants
        self._table = table_name

    @property
    def grants(self) -> GrantRepository:
        return self._grants

    def take(
        self,
        counters: list[QuotaCounter],
        quantity: Decimal,
        now: datetime,
        *,
        record_put: Callable[[DrawPlan, Decimal], dict[str, Any] | list[dict[str, Any]]] | None = None,
    ) -> DrawOutcome:
        """Take `quantity` from `counters` (every shard of one hard quota, as just read) and the tenant's
        live grants, all or nothing. `record_put(plan, grant_balance)` gives the idempotent consume's
        record (with its answer, known once the plan is) to commit in the same transaction."""
        first = counters[0]
        grants = self._grants.list(first.tenant_id, first.resource_type)
        balance = live_balance(grants, now)
        quota_left = sum((max(ZERO, c.remaining) for c in counters), ZERO)
        plan = plan_draw(quota_left, grants, quantity, now)
        if plan is None:
            return DrawOutcome(granted=False, plan=None, grant_balance=balance, short=True)
        if not plan.from_grants:
            # The quota covers the take after all (a release or a rollover since the caller read it).
            return DrawOutcome(granted=False, plan=plan, grant_balance=balance, conflict=True)
        items = [self._counter_request(c, now) for c in counters]
        items += [self._grants.draw_request(grant, take, now) for grant, take in plan.from_grants]
        records_from = len(items)
        if record_put is not None:
            made = record_put(plan, balance)
            items.extend(made if isinstance(made, list) else [made])
        try:
            self._grants.client.transact_write_items(TransactItems=items)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = err.response.get("CancellationReasons") or []
            failed = [i for i in range(records_from, len(items)) if len(reasons) == len(items) and _failed(reasons[i])]
            reused = record_put is not None and bool(failed)
            return DrawOutcome(
                granted=False,
                plan=plan,
                grant_balance=balance,
                conflict=True,
                existing_record=reused,
                existing_item=dict(reasons[failed[0]].get("Item") or {}) or None if reused else None,
                record_index=failed[0] - records_from if reused else 0,
            )
        return DrawOutcome(granted=True, plan=plan, grant_balance=balance)

    def _counter_request(self, counter: QuotaCounter, now: datetime) -> dict[str, Any]:
        """Give everything the shard has (the plan drains the quota before any grant), or just check it
        is still as seen when it has nothing."""
        take = max(ZERO, counter.remaining)
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": counter_key(counter.tenant_id, counter.resource_type, counter.shard, counter.shards),
            "ConditionExpression": "#st = :active AND #pe > :now AND #rem = :seen",
            "ExpressionAttributeNames": {"#st": "state", "#pe": "period_end", "#rem": "remaining"},
            "ExpressionAttributeValues": {
                ":active": {"S": CounterState.ACTIVE.value},
                ":now": {"N": str(to_epoch(now))},
                ":seen": {"N": format(counter.remaining, "f")},
            },
        }
        if take <= 0:
            return {"ConditionCheck": request}
        request["UpdateExpression"] = "SET #rem = #rem - :q, #used = #used + :q"
        request["ExpressionAttributeNames"]["#used"] = "used"
        request["ExpressionAttributeValues"][":q"] = {"N": format(take, "f")}
        return {"Update": request}


def _failed(reason: Mapping[str, Any]) -> bool:
    return reason.get("Code") == "ConditionalCheckFailed"


def drawn_from(plan: DrawPlan) -> tuple[tuple[str, Decimal], ...]:
    return tuple((grant.grant_id, take) for grant, take in plan.from_grants)
