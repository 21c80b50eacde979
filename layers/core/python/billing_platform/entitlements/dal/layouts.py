"""Counters' lifecycle writes: period rollover, plan terms, layout switches, retire and suspend.

Each is conditioned on the counter as the caller saw it, so of racing writers exactly one applies and
a period is never granted twice; the losers re-read and decide again.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from billing_platform.catalog.models import QuotaPolicy
from billing_platform.conditions import applied, transact_write_items
from billing_platform.dynamodb import number_attr, string_attr
from billing_platform.entitlements.dal.items import NAMES, counter_key, counter_to_item
from billing_platform.entitlements.dal.table import TableAccess, update_item
from billing_platform.entitlements.models import CounterState, QuotaCounter
from billing_platform.instants import to_epoch
from billing_platform.quantities import ZERO


class LayoutAccess(TableAccess):
    """Writes that change a counter's period, terms, layout or state (never its `used` by a consume)."""

    def rollover(self, counter: QuotaCounter, start: datetime, end: datetime, now: datetime) -> bool:
        """Start a new period, only if the counter still ends where the caller saw it end: of many
        racing resets exactly one succeeds, so a period is never granted twice."""
        return applied(
            lambda: update_item(
                self.client,
                TableName=self._table,
                Key=counter_key(counter.tenant_id, counter.resource_type, counter.shard, counter.shards),
                UpdateExpression="SET #used = :zero, #rem = #lim, #ps = :ps, #pe = :pe, updated_at = :at",
                ConditionExpression="#pe = :old",
                ExpressionAttributeNames={k: NAMES[k] for k in ("#used", "#rem", "#lim", "#ps", "#pe")},
                ExpressionAttributeValues={
                    ":zero": number_attr(ZERO),
                    ":ps": number_attr(to_epoch(start)),
                    ":pe": number_attr(to_epoch(end)),
                    ":old": number_attr(to_epoch(counter.period_end)),
                    ":at": string_attr(now.isoformat()),
                },
            )
        )

    def set_plan_terms(
        self,
        existing: QuotaCounter,
        *,
        limit: Decimal,
        total_limit: Decimal | None,
        policy: QuotaPolicy,
        plan_id: str,
        period_start: datetime,
        period_end: datetime,
        reset: bool,
        now: datetime,
    ) -> bool:
        """Apply plan terms to one existing counter of the layout in force, conditioned on the period
        the caller saw. `reset` starts the new period at used=0; otherwise `used` is kept and
        remaining = limit - used is computed by DynamoDB, atomically with concurrent consumes."""
        values: dict[str, Any] = {
            ":lim": number_attr(limit),
            ":pol": string_attr(policy.value),
            ":plan": string_attr(plan_id),
            ":ps": number_attr(to_epoch(period_start)),
            ":pe": number_attr(to_epoch(period_end)),
            ":old": number_attr(to_epoch(existing.period_end)),
            ":active": string_attr(CounterState.ACTIVE.value),
            ":at": string_attr(now.isoformat()),
        }
        sets = ["#lim = :lim", "#pol = :pol", "plan_id = :plan", "#ps = :ps", "#pe = :pe", "#st = :active"]
        sets.append("updated_at = :at")
        if reset:
            values[":zero"] = number_attr(ZERO)
            sets += ["#used = :zero", "#rem = :lim"]
        else:
            sets.append("#rem = :lim - #used")
        remove = " REMOVE current_shards"
        if total_limit is not None:
            values[":tl"] = number_attr(total_limit)
            sets.append("total_limit = :tl")
        else:
            remove += ", total_limit"
        return applied(
            lambda: update_item(
                self.client,
                TableName=self._table,
                Key=counter_key(existing.tenant_id, existing.resource_type, existing.shard, existing.shards),
                UpdateExpression="SET " + ", ".join(sets) + remove,
                ConditionExpression="#pe = :old",
                ExpressionAttributeNames={k: NAMES[k] for k in ("#lim", "#pol", "#ps", "#pe", "#st", "#used", "#rem")},
                ExpressionAttributeValues=values,
            )
        )

    def switch_layout(
        self,
        writes: list[tuple[QuotaCounter, QuotaCounter | None]],
        retires: list[tuple[QuotaCounter, int]],
        now: datetime,
    ) -> bool:
        """Move a quota to another counter layout in one transaction: `writes` are (new item, the item
        seen at that key or None), `retires` are (old counter as seen, layout now in force). Every
        item is conditioned on being exactly as seen, so usage that raced the switch fails it and the
        caller re-reads; nothing is lost or granted twice."""
        items: list[dict[str, Any]] = []
        for counter, seen in writes:
            put: dict[str, Any] = {"TableName": self._table, "Item": counter_to_item(counter, now)}
            put.update(self._seen_condition(seen))
            items.append({"Put": put})
        for old, current in retires:
            condition = self._seen_condition(old)
            condition["ExpressionAttributeNames"]["#st"] = "state"
            condition["ExpressionAttributeValues"].update(
                {
                    ":retired": string_attr(CounterState.RETIRED.value),
                    ":cur": number_attr(current),
                    ":at": string_attr(now.isoformat()),
                }
            )
            items.append(
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": counter_key(old.tenant_id, old.resource_type, old.shard, old.shards),
                        "UpdateExpression": "SET #st = :retired, current_shards = :cur, updated_at = :at",
                        **condition,
                    }
                }
            )
        if len(items) > 100:
            raise ValueError("a layout switch touches more than 100 counters")
        return applied(lambda: transact_write_items(self.client, items))

    @staticmethod
    def _seen_condition(seen: QuotaCounter | None) -> dict[str, Any]:
        if seen is None:
            # Absent, or left retired by an earlier layout that used the same key.
            return {
                "ConditionExpression": "attribute_not_exists(pk) OR #st = :seen_retired",
                "ExpressionAttributeNames": {"#st": "state"},
                "ExpressionAttributeValues": {":seen_retired": string_attr(CounterState.RETIRED.value)},
            }
        return {
            "ConditionExpression": "#used = :seen_used AND #pe = :seen_pe AND #st = :seen_st",
            "ExpressionAttributeNames": {"#used": "used", "#pe": "period_end", "#st": "state"},
            "ExpressionAttributeValues": {
                ":seen_used": number_attr(seen.used),
                ":seen_pe": number_attr(to_epoch(seen.period_end)),
                ":seen_st": string_attr(seen.state.value),
            },
        }

    def retire(self, counter: QuotaCounter, current_shards: int, now: datetime) -> bool:
        """Freeze a live counter: RETIRED (no consume passes its condition any more), pointing at the
        layout now in force. Conditioned on the state only, so it succeeds however busy the counter
        is; its `used` is final from then on."""
        return self._set_live_state(counter, CounterState.RETIRED, now, current_shards=current_shards)

    def set_state(self, counter: QuotaCounter, state: CounterState, now: datetime) -> bool:
        """Move a live counter between active and suspended (never touches a retired one)."""
        return self._set_live_state(counter, state, now)

    def _set_live_state(
        self, counter: QuotaCounter, state: CounterState, now: datetime, *, current_shards: int | None = None
    ) -> bool:
        sets = "SET #st = :st, updated_at = :at"
        values = {
            ":st": string_attr(state.value),
            ":at": string_attr(now.isoformat()),
            ":active": string_attr(CounterState.ACTIVE.value),
            ":suspended": string_attr(CounterState.SUSPENDED.value),
        }
        if current_shards is not None:
            sets += ", current_shards = :cur"
            values[":cur"] = number_attr(current_shards)
        return applied(
            lambda: update_item(
                self.client,
                TableName=self._table,
                Key=counter_key(counter.tenant_id, counter.resource_type, counter.shard, counter.shards),
                UpdateExpression=sets,
                ConditionExpression="#st IN (:active, :suspended)",
                ExpressionAttributeNames={"#st": "state"},
                ExpressionAttributeValues=values,
            )
        )
