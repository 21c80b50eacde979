"""Quota counters: reads, THE hot path (one conditional UpdateItem per consume), single-counter release."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from billing_platform.catalog.models import QuotaPolicy, parse_window_marker
from billing_platform.conditions import Cancellation, lost_race, transact_once
from billing_platform.dynamodb import number_attr, string_attr
from billing_platform.entitlements.dal.items import Item, counter_from_item, counter_key
from billing_platform.entitlements.dal.table import TableAccess, update_item
from billing_platform.entitlements.models import CounterState, QuotaCounter
from billing_platform.instants import to_epoch
from billing_platform.levels import WINDOWS_ATTRIBUTE, align_windows, with_windows
from billing_platform.quantities import ZERO


def consume_expression(quantity: Decimal, now: datetime, *, enforce: bool, windows: str = "") -> dict[str, Any]:
    """Take `quantity` from a live counter of the current period (with `enforce`, a hard quota only
    while it has that much left), and from each short window `windows` names (the counter's marker as last
    seen; pinned: a counter carrying other windows refuses the take). Shared by the hot path and every
    transaction that consumes."""
    condition = "#st = :active AND #pe > :now"
    values = {
        ":q": number_attr(quantity),
        ":now": number_attr(to_epoch(now)),
        ":active": string_attr(CounterState.ACTIVE.value),
    }
    names = {"#rem": "remaining", "#used": "used", "#st": "state", "#pe": "period_end"}
    if enforce:
        # Soft and unlimited quotas pass and count; hard ones need the quantity left.
        condition += " AND (#rem >= :q OR #pol <> :hard)"
        values[":hard"] = string_attr(QuotaPolicy.HARD.value)
        names["#pol"] = "policy"
    expression = {
        "UpdateExpression": "SET #rem = #rem - :q, #used = #used + :q",
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
    return with_windows(expression, parse_window_marker(windows))


def release_expression(quantity: Decimal, period_end: datetime | None) -> dict[str, Any]:
    """A counter's give-back: never below zero used, never into a retired counter (its usage is final,
    carried into the layout in force), and with `period_end` only while the counter is in that period."""
    values: dict[str, Any] = {":q": number_attr(quantity), ":retired": string_attr(CounterState.RETIRED.value)}
    names = {"#rem": "remaining", "#used": "used", "#st": "state"}
    condition = "#used >= :q AND #st <> :retired"
    if period_end is not None:
        condition += " AND #pe = :pe"
        values[":pe"] = number_attr(to_epoch(period_end))
        names["#pe"] = "period_end"
    return {
        "UpdateExpression": "SET #rem = #rem + :q, #used = #used - :q",
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def take_item(
    table: str, key: Item, quantity: Decimal, now: datetime, *, enforce: bool, windows: str = ""
) -> dict[str, Any]:
    """A consume as one item of a transaction (the counter returned with a failed condition)."""
    return {
        "Update": {
            "TableName": table,
            "Key": key,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            **consume_expression(quantity, now, enforce=enforce, windows=windows),
        }
    }


class CounterAccess(TableAccess):
    """Reads of counters, the writes that move `used` of one counter, and the transactions that take
    from counters together with other items (a reservation, grants, a consume record)."""

    # --- transactions a use case assembles ----------------------------------------------------

    def take_request(
        self, key: Item, quantity: Decimal, now: datetime, *, enforce: bool, windows: str = ""
    ) -> dict[str, Any]:
        """A consume of the counter at `key` as one item of a transaction."""
        return take_item(self._table, key, quantity, now, enforce=enforce, windows=windows)

    def drain_request(self, counter: QuotaCounter, now: datetime, quantity: Decimal = ZERO) -> dict[str, Any]:
        """Give everything the shard has (a grant draw drains the quota before any grant), or just check
        it is still as seen when it has nothing: conditioned on the counter being exactly as seen, still
        active, its period not over. A counter with short windows counts the whole `quantity` there (the
        grants pay the rest of the period's part, but a window caps what is taken, whoever pays it)."""
        if counter.windows:
            return self._drain_windowed(counter, now, quantity)
        take = max(ZERO, counter.remaining)
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": counter_key(counter.tenant_id, counter.resource_type, counter.shard, counter.shards),
            "ConditionExpression": "#st = :active AND #pe > :now AND #rem = :seen",
            "ExpressionAttributeNames": {"#st": "state", "#pe": "period_end", "#rem": "remaining"},
            "ExpressionAttributeValues": {
                ":active": string_attr(CounterState.ACTIVE.value),
                ":now": number_attr(to_epoch(now)),
                ":seen": number_attr(counter.remaining),
            },
        }
        if take <= 0:
            return {"ConditionCheck": request}
        request["UpdateExpression"] = "SET #rem = #rem - :q, #used = #used + :q"
        request["ExpressionAttributeNames"]["#used"] = "used"
        request["ExpressionAttributeValues"][":q"] = number_attr(take)
        return {"Update": request}

    def _drain_windowed(self, counter: QuotaCounter, now: datetime, quantity: Decimal) -> dict[str, Any]:
        take = max(ZERO, counter.remaining)
        expression = {
            "UpdateExpression": "SET #rem = #rem - :q, #used = #used + :q",
            "ConditionExpression": "#st = :active AND #pe > :now AND #rem = :seen",
            "ExpressionAttributeNames": {"#st": "state", "#pe": "period_end", "#rem": "remaining", "#used": "used"},
            "ExpressionAttributeValues": {
                ":active": string_attr(CounterState.ACTIVE.value),
                ":now": number_attr(to_epoch(now)),
                ":seen": number_attr(counter.remaining),
                ":q": number_attr(take),
                ":wq": number_attr(quantity),
            },
        }
        windowed = with_windows(expression, parse_window_marker(counter.windows), amount=":wq")
        key = counter_key(counter.tenant_id, counter.resource_type, counter.shard, counter.shards)
        update = {"TableName": self._table, "Key": key, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
        return {"Update": {**update, **windowed}}

    def align_windows(self, key: Item, seen: Item, now: datetime) -> bool:
        """Start the counter's windows that ended (or never started), conditioned on the item as `seen`
        (`levels.align_windows`: of racing callers one starts a window). False: lost a race (read again)."""
        marker = seen.get(WINDOWS_ATTRIBUTE, {}).get("S", "")
        return align_windows(self.client, self._table, key, seen, parse_window_marker(marker), now)

    def set_windows(self, key: Item, seen: Item, windows: str, now: datetime) -> bool:
        """Bring the counter's windows to the plan's `windows` (a live window keeps what it used against its
        new limit), conditioned on the marker `seen`. False: lost a race (read again)."""
        return align_windows(self.client, self._table, key, seen, parse_window_marker(windows), now)

    def commit(self, items: list[dict[str, Any]]) -> Cancellation | None:
        """One TransactWriteItems, sent once: None when it applied, else what DynamoDB said of each item
        (the caller decides whether to plan again). Any other failure is raised."""
        return transact_once(self.client, items)

    # --- reads --------------------------------------------------------------------------------

    def get_counter_item(self, key: Item) -> Item | None:
        return self.get_item(key)

    def get_counter(self, tenant_id: str, resource_type: str, shard: int = 0, shards: int = 1) -> QuotaCounter | None:
        item = self.get_item(counter_key(tenant_id, resource_type, shard, shards))
        return counter_from_item(item) if item else None

    def get_layout(self, tenant_id: str, resource_type: str, shards: int) -> list[QuotaCounter]:
        """Every counter of a `shards`-wide layout, in shard order (strongly consistent; missing ones are
        left out, so fewer than `shards` means the layout changed)."""
        keys = [counter_key(tenant_id, resource_type, i, shards) for i in range(shards)]
        return sorted(self.get_counters(keys), key=lambda c: c.shard)

    def get_counters(self, keys: list[Item]) -> list[QuotaCounter]:
        """Strongly consistent batch read of counters (any order; missing ones are left out)."""
        found: list[QuotaCounter] = []
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {self._table: {"Keys": keys[start : start + 100], "ConsistentRead": True}}
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                found.extend(counter_from_item(i) for i in response.get("Responses", {}).get(self._table, []))
                request = response.get("UnprocessedKeys") or {}
        return found

    # --- the hot path -------------------------------------------------------------------------

    def consume(
        self, key: Item, quantity: Decimal, now: datetime, *, enforce: bool, windows: str = ""
    ) -> tuple[QuotaCounter | None, Item | None]:
        """THE hot path: one conditional UpdateItem (its windows counted in it). Returns (counter after, None)
        when granted, or (None, the item as it was) when the condition failed (None item: no counter yet)."""
        return self._update_counter(key, **consume_expression(quantity, now, enforce=enforce, windows=windows))

    # --- release (no idempotency key) ---------------------------------------------------------

    def release(
        self, key: Item, quantity: Decimal, *, period_end: datetime | None = None
    ) -> tuple[QuotaCounter | None, Item | None]:
        """Give `quantity` back to one counter, only if it has at least that much used (never below
        zero) and, with `period_end`, only while it is still in that period. Returns (counter after,
        None) or (None, the item as it was when the condition failed)."""
        return self._update_counter(key, **release_expression(quantity, period_end))

    def release_request(self, key: Item, quantity: Decimal, *, period_end: datetime | None = None) -> dict[str, Any]:
        """`release` as a transaction item (a capped tenant's release commits it with the spend's give-back)."""
        return {
            "Update": {
                "TableName": self._table,
                "Key": key,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                **release_expression(quantity, period_end),
            }
        }

    def _update_counter(self, key: Item, **update: Any) -> tuple[QuotaCounter | None, Item | None]:
        """One conditional UpdateItem of a counter: (counter after, None) when it applied, or (None, the item
        as it was) when its condition refused it (None item: no counter yet)."""
        try:
            response = update_item(
                self.client,
                TableName=self._table,
                Key=key,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **update,
            )
        except ClientError as err:
            if lost_race(err):
                old: Item | None = err.response.get("Item")  # type: ignore[assignment]
                return None, old
            raise
        return counter_from_item(response["Attributes"]), None
