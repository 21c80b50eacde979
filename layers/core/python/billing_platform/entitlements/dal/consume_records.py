"""Idempotent consumes: the `CONSUME#<tid>#<key>` record written in the same transaction as the take,
its stored answer, the multi-shard take, and the exactly-once release of what a keyed consume took."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from billing_platform.conditions import Cancellation, applied, transact_once, transact_write_items
from billing_platform.dynamodb import decimal_of, number_attr, string_attr
from billing_platform.entitlements.dal.counters import take_item
from billing_platform.entitlements.dal.items import (
    CONSUME_RECORD_DAYS,
    NAMES,
    Item,
    consume_record_key,
    counter_from_item,
    counter_key,
)
from billing_platform.entitlements.dal.table import TableAccess, update_item
from billing_platform.entitlements.models import CounterState, EntitlementCheck, QuotaCounter
from billing_platform.instants import from_epoch, to_epoch


@dataclass(frozen=True)
class ConsumeRecord:
    """The stored answer of an idempotent consume. `consumed_at` pins the period it was taken from:
    a release gives back only while the counter is still in the period containing that moment."""

    tenant_id: str
    idempotency_key: str
    resource_type: str
    quantity: Decimal
    consumed_at: datetime
    shards: tuple[tuple[int, Decimal], ...]  # (shard, quantity taken from it)
    layout: int
    answer: EntitlementCheck | None = None
    released: bool = False
    # The entities the take also counted at (entitlements.entity_take): a release gives back there too.
    entities: tuple[str, ...] = ()


@dataclass(frozen=True)
class KeyedTake:
    """Outcome of a consume-with-record transaction."""

    granted: bool
    existing_record: ConsumeRecord | None = None  # the key was used before: replay it
    counter_item: Item | None = None  # the counter as it was when its condition failed
    conflict: bool = False  # another transaction held an item: retry


def record_to_item(record: ConsumeRecord) -> Item:
    item: Item = {
        **consume_record_key(record.tenant_id, record.idempotency_key),
        "tenant_id": string_attr(record.tenant_id),
        "idempotency_key": string_attr(record.idempotency_key),
        "resource_type": string_attr(record.resource_type),
        "quantity": number_attr(record.quantity),
        "consumed_at": number_attr(to_epoch(record.consumed_at)),
        "shards": {"L": [{"L": [number_attr(s), number_attr(q)]} for s, q in record.shards]},
        "layout": number_attr(record.layout),
        "released": {"BOOL": record.released},
        "expires_at": number_attr(to_epoch(record.consumed_at + timedelta(days=CONSUME_RECORD_DAYS))),
    }
    if record.answer is not None:
        item["answer"] = string_attr(json.dumps(record.answer.to_dict()))
    if record.entities:
        item["entities"] = {"L": [string_attr(e) for e in record.entities]}
    return item


def record_from_item(item: Item) -> ConsumeRecord:
    key = item["idempotency_key"]["S"]
    answer = None
    if "answer" in item:
        answer = EntitlementCheck.from_dict(json.loads(item["answer"]["S"]), idempotency_key=key)
    return ConsumeRecord(
        tenant_id=item["tenant_id"]["S"],
        idempotency_key=key,
        resource_type=item["resource_type"]["S"],
        quantity=decimal_of(item["quantity"]),
        consumed_at=from_epoch(int(item["consumed_at"]["N"])),
        shards=tuple((int(p["L"][0]["N"]), decimal_of(p["L"][1])) for p in item.get("shards", {}).get("L", [])),
        layout=int(item.get("layout", {"N": "1"})["N"]),
        answer=answer,
        released=bool(item.get("released", {}).get("BOOL", False)),
        entities=tuple(e["S"] for e in item.get("entities", {}).get("L", [])),
    )


class ConsumeRecordAccess(TableAccess):
    """Consume records and the transactions that write them together with the counters."""

    # --- consume with a record ----------------------------------------------------------------

    def consume_once(
        self, key: Item, quantity: Decimal, now: datetime, *, enforce: bool, record: ConsumeRecord, windows: str = ""
    ) -> KeyedTake:
        """Consume (and count the `windows`) and store the consume record in one transaction, so a retried
        key consumes once."""
        take = take_item(self._table, key, quantity, now, enforce=enforce, windows=windows)
        return self._take_with_record(take, key, record)

    def consume_once_pinned(
        self, expected: QuotaCounter, quantity: Decimal, now: datetime, *, enforce: bool, record: ConsumeRecord
    ) -> KeyedTake:
        """`consume_once` for a counter known to be in state `expected`, the record carrying its answer.

        The take's condition also pins every field the answer is made of (used, remaining, limits, policy,
        period end), so when it commits the counter went from exactly `expected` to `expected` minus the
        quantity, and the answer stored with the record is exact: one request, no read, nothing to store
        afterwards. A counter that moved meanwhile fails the condition and comes back as `counter_item`."""
        key = counter_key(expected.tenant_id, expected.resource_type, expected.shard, expected.shards)
        take = take_item(self._table, key, quantity, now, enforce=enforce, windows=expected.windows)
        update = take["Update"]
        update["ExpressionAttributeNames"].update({"#lim": NAMES["#lim"], "#pol": NAMES["#pol"], "#tl": "total_limit"})
        values = update["ExpressionAttributeValues"]
        values.update(
            {
                ":pin_used": number_attr(expected.used),
                ":pin_rem": number_attr(expected.remaining),
                ":pin_lim": number_attr(expected.limit),
                ":pin_pe": number_attr(to_epoch(expected.period_end)),
                ":pin_pol": string_attr(expected.policy.value),
            }
        )
        pins = "#used = :pin_used AND #rem = :pin_rem AND #lim = :pin_lim AND #pe = :pin_pe AND #pol = :pin_pol"
        if expected.total_limit is None:
            pins += " AND attribute_not_exists(#tl)"
        else:
            pins += " AND #tl = :pin_tl"
            values[":pin_tl"] = number_attr(expected.total_limit)
        update["ConditionExpression"] = f"{update['ConditionExpression']} AND {pins}"
        return self._take_with_record(take, key, record)

    def _take_with_record(self, take: Item, key: Item, record: ConsumeRecord) -> KeyedTake:
        """The take (transaction item 0) and the key's consume record, all or nothing."""
        refused = transact_once(self.client, [take, self._record_put(record)])
        if refused is not None:
            return self._keyed_failure(refused, record, counter_index=0, key=key)
        return KeyedTake(granted=True)

    def get_counter_and_record(
        self, key: Item, tenant_id: str, idempotency_key: str
    ) -> tuple[QuotaCounter | None, ConsumeRecord | None]:
        """The counter and the key's consume record, both strongly consistent, in one BatchGetItem."""
        record_key = consume_record_key(tenant_id, idempotency_key)
        request: dict[str, Any] = {self._table: {"Keys": [key, record_key], "ConsistentRead": True}}
        counter: QuotaCounter | None = None
        record: ConsumeRecord | None = None
        while request:
            response = self.client.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(self._table, []):
                if item["pk"] == record_key["pk"]:
                    record = record_from_item(item)
                else:
                    counter = counter_from_item(item)
            request = response.get("UnprocessedKeys") or {}
        return counter, record

    def take_from_shards(
        self, takes: list[tuple[QuotaCounter, Decimal]], now: datetime, record: ConsumeRecord | None
    ) -> KeyedTake:
        """Take a quantity spread over several shards, all or nothing (one transaction), each shard
        still conditioned on `remaining >= take`: a refused transaction has changed nothing."""
        items: list[dict[str, Any]] = [
            take_item(
                self._table,
                counter_key(counter.tenant_id, counter.resource_type, counter.shard, counter.shards),
                take,
                now,
                enforce=True,
            )
            for counter, take in takes
        ]
        if record is not None:
            items.append(self._record_put(record))
        refused = transact_once(self.client, items)
        if refused is not None:
            if record is not None:
                outcome = self._keyed_failure(refused, record, counter_index=0, key=None)
                if outcome.existing_record is not None:
                    return outcome
            return KeyedTake(granted=False, conflict=True)
        return KeyedTake(granted=True)

    def _keyed_failure(
        self, refused: Cancellation, record: ConsumeRecord, *, counter_index: int, key: Item | None
    ) -> KeyedTake:
        # The record is the transaction's last item.
        record_index = refused.reasons - 1
        if record_index >= 0 and record_index in refused.failed:
            existing = refused.item(record_index) or self.get_consume_record_item(
                record.tenant_id, record.idempotency_key
            )
            return KeyedTake(granted=False, existing_record=record_from_item(existing) if existing else None)
        if refused.conflicted or refused.reasons == 0:
            return KeyedTake(granted=False, conflict=True)
        if counter_index in refused.failed:
            item = refused.item(counter_index) or (self.get_item(key) if key else None)
            return KeyedTake(granted=False, counter_item=item)
        return KeyedTake(granted=False, conflict=True)

    def record_put_request(self, record: ConsumeRecord) -> dict[str, Any]:
        """The conditional `Put` of a consume record, for a transaction built elsewhere (grant draws)."""
        return self._record_put(record)

    def _record_put(self, record: ConsumeRecord) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self._table,
                "Item": record_to_item(record),
                "ConditionExpression": "attribute_not_exists(pk)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    # --- the record on its own ----------------------------------------------------------------

    def get_consume_record_item(self, tenant_id: str, idempotency_key: str) -> Item | None:
        return self.get_item(consume_record_key(tenant_id, idempotency_key))

    def get_consume_record(self, tenant_id: str, idempotency_key: str) -> ConsumeRecord | None:
        item = self.get_consume_record_item(tenant_id, idempotency_key)
        return record_from_item(item) if item else None

    def put_consume_record(self, record: ConsumeRecord) -> bool:
        """Store a record on its own (a denied idempotent consume), only if the key is new."""
        return applied(
            lambda: self.client.put_item(
                TableName=self._table, Item=record_to_item(record), ConditionExpression="attribute_not_exists(pk)"
            )
        )

    def save_answer(self, tenant_id: str, idempotency_key: str, answer: EntitlementCheck) -> None:
        """Store the answer a replay returns (first writer wins)."""
        update_item(
            self.client,
            TableName=self._table,
            Key=consume_record_key(tenant_id, idempotency_key),
            UpdateExpression="SET answer = if_not_exists(answer, :a)",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":a": string_attr(json.dumps(answer.to_dict()))},
        )

    # --- release of a keyed consume -----------------------------------------------------------

    def release_once(self, record: ConsumeRecord, levels: list[dict[str, Any]] | None = None) -> bool:
        """Give back what an idempotent consume took, exactly once: marks the record released in the
        same transaction (with `levels`: the give-backs of the entities it counted at). Refused (False)
        when already released or the period has moved on."""
        items: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self._table,
                    "Key": consume_record_key(record.tenant_id, record.idempotency_key),
                    "UpdateExpression": "SET released = :t",
                    "ConditionExpression": "attribute_exists(pk) AND released = :f",
                    "ExpressionAttributeValues": {":t": {"BOOL": True}, ":f": {"BOOL": False}},
                }
            }
        ]
        for shard, quantity in record.shards:
            items.append(
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": counter_key(record.tenant_id, record.resource_type, shard, record.layout),
                        "UpdateExpression": "SET #rem = #rem + :q, #used = #used - :q",
                        # Still the period the consume was taken from, and never below zero used.
                        "ConditionExpression": "#used >= :q AND #ps <= :at AND #pe > :at AND #st <> :retired",
                        "ExpressionAttributeNames": {k: NAMES[k] for k in ("#rem", "#used", "#ps", "#pe", "#st")},
                        "ExpressionAttributeValues": {
                            ":q": number_attr(quantity),
                            ":at": number_attr(to_epoch(record.consumed_at)),
                            ":retired": string_attr(CounterState.RETIRED.value),
                        },
                    }
                }
            )
        items += levels or []
        return applied(lambda: transact_write_items(self.client, items))
