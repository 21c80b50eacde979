"""DynamoDB access for entitlements: the tenant's PLAN item, quota counters, consume records.

Item layout (billing table, single-table design):
- `TENANT#<tid>` / `PLAN`: plan id, status, features, period, counter layout, source version.
- `QUOTA#<tid>#<resource>` / `COUNTER` (one shard) or `QUOTA#<tid>#<resource>#<i>` / `COUNTER`
  (sharded): its own partition per counter, so a tenant's counters never share a partition key.
- `CONSUME#<tid>#<key>` / `CONSUME`: an idempotent consume's answer (TTL `expires_at`).

The unsharded key is the quota's directory: once provisioned it always exists, as the counter itself
(one shard) or as a RETIRED marker whose `current_shards` names the layout in force (0: not in plan).

Every quota change is a conditional write; numbers go to DynamoDB as Decimal strings, never floats.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from billing_platform import clients
from billing_platform.catalog.models import QuotaPolicy
from billing_platform.conditions import lost_race
from billing_platform.entitlements.models import (
    ZERO,
    CounterState,
    EntitlementCheck,
    QuotaCounter,
    TenantPlan,
    from_epoch,
    to_epoch,
)
from billing_platform.settings import Settings

Item = dict[str, Any]
COUNTER_SK = "COUNTER"
CONSUME_RECORD_DAYS = 40  # kept past the period so a late retry still finds its answer

# Every attribute name goes through a placeholder: several (state, limit, used) are reserved words.
_NAMES = {
    "#rem": "remaining",
    "#used": "used",
    "#lim": "limit",
    "#pe": "period_end",
    "#ps": "period_start",
    "#st": "state",
    "#pol": "policy",
}


def _n(value: Decimal | int) -> dict[str, str]:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("DynamoDB numbers must be finite")
        return {"N": format(value, "f")}
    return {"N": str(value)}


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _dec(attr: dict[str, str] | None) -> Decimal:
    return Decimal(attr["N"]) if attr else ZERO


def plan_key(tenant_id: str) -> Item:
    return {"pk": _s(f"TENANT#{tenant_id}"), "sk": _s("PLAN")}


def profile_key(tenant_id: str) -> Item:
    return {"pk": _s(f"TENANT#{tenant_id}"), "sk": _s("PROFILE")}


def counter_pk(tenant_id: str, resource_type: str, shard: int, shards: int) -> str:
    base = f"QUOTA#{tenant_id}#{resource_type}"
    return base if shards <= 1 else f"{base}#{shard}"


def counter_key(tenant_id: str, resource_type: str, shard: int = 0, shards: int = 1) -> Item:
    return {"pk": _s(counter_pk(tenant_id, resource_type, shard, shards)), "sk": _s(COUNTER_SK)}


def consume_record_key(tenant_id: str, idempotency_key: str) -> Item:
    return {"pk": _s(f"CONSUME#{tenant_id}#{idempotency_key}"), "sk": _s("CONSUME")}


def counter_to_item(counter: QuotaCounter, now: datetime) -> Item:
    item: Item = {
        **counter_key(counter.tenant_id, counter.resource_type, counter.shard, counter.shards),
        "tenant_id": _s(counter.tenant_id),
        "resource_type": _s(counter.resource_type),
        "plan_id": _s(counter.plan_id),
        "policy": _s(counter.policy.value),
        "limit": _n(counter.limit),
        "used": _n(counter.used),
        "remaining": _n(counter.remaining),
        "period_start": _n(to_epoch(counter.period_start)),
        "period_end": _n(to_epoch(counter.period_end)),
        "state": _s(counter.state.value),
        "shard": _n(counter.shard),
        "shards": _n(counter.shards),
        "updated_at": _s(now.isoformat()),
    }
    if counter.total_limit is not None:
        item["total_limit"] = _n(counter.total_limit)
    if counter.current_shards is not None:
        item["current_shards"] = _n(counter.current_shards)
    return item


def counter_from_item(item: Item) -> QuotaCounter:
    return QuotaCounter(
        tenant_id=item["tenant_id"]["S"],
        resource_type=item["resource_type"]["S"],
        policy=QuotaPolicy(item["policy"]["S"]),
        limit=_dec(item.get("limit")),
        used=_dec(item.get("used")),
        remaining=_dec(item.get("remaining")),
        period_start=from_epoch(int(item["period_start"]["N"])),
        period_end=from_epoch(int(item["period_end"]["N"])),
        plan_id=item["plan_id"]["S"],
        state=CounterState(item["state"]["S"]),
        shard=int(item.get("shard", {"N": "0"})["N"]),
        shards=int(item.get("shards", {"N": "1"})["N"]),
        total_limit=_dec(item["total_limit"]) if "total_limit" in item else None,
        current_shards=int(item["current_shards"]["N"]) if "current_shards" in item else None,
    )


def plan_to_item(plan: TenantPlan, now: datetime) -> Item:
    item: Item = {
        **plan_key(plan.tenant_id),
        "tenant_id": _s(plan.tenant_id),
        "plan_id": _s(plan.plan_id),
        "status": _s(plan.status),
        "period_start": _n(to_epoch(plan.period_start)),
        "period_end": _n(to_epoch(plan.period_end)),
        "features": {"M": {k: {"BOOL": v} for k, v in plan.features.items()}},
        "counter_shards": _n(plan.counter_shards),
        "updated_at": _s(now.isoformat()),
    }
    if plan.source_version is not None:
        item["source_version"] = _n(plan.source_version)
    if plan.suspended_reason:
        item["suspended_reason"] = _s(plan.suspended_reason)
    return item


def plan_from_item(item: Item) -> TenantPlan:
    return TenantPlan(
        tenant_id=item["tenant_id"]["S"],
        plan_id=item["plan_id"]["S"],
        status=item["status"]["S"],
        period_start=from_epoch(int(item["period_start"]["N"])),
        period_end=from_epoch(int(item["period_end"]["N"])),
        features={k: bool(v["BOOL"]) for k, v in item.get("features", {}).get("M", {}).items()},
        counter_shards=int(item.get("counter_shards", {"N": "1"})["N"]),
        source_version=int(item["source_version"]["N"]) if "source_version" in item else None,
        suspended_reason=item["suspended_reason"]["S"] if "suspended_reason" in item else None,
    )


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


@dataclass(frozen=True)
class KeyedTake:
    """Outcome of a consume-with-record transaction."""

    granted: bool
    existing_record: ConsumeRecord | None = None  # the key was used before: replay it
    counter_item: Item | None = None  # the counter as it was when its condition failed
    conflict: bool = False  # another transaction held an item: retry


# botocore's standard retry mode does not retry TransactionConflictException, which DynamoDB returns to
# a single-item write that collides with a running transaction (an idempotent consume, a release, a
# layout switch on the same counter). The collision is momentary, so the write is simply sent again.
TRANSACTION_CONFLICT_ATTEMPTS = 5


def _update_item(client: Any, **kwargs: Any) -> Any:
    for attempt in range(TRANSACTION_CONFLICT_ATTEMPTS):
        try:
            return client.update_item(**kwargs)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code")
            if code != "TransactionConflictException" or attempt == TRANSACTION_CONFLICT_ATTEMPTS - 1:
                raise
            time.sleep(random.uniform(0.001, 0.005 * (attempt + 1)))
    raise AssertionError("unreachable")


def _cancel_reasons(err: ClientError) -> list[dict[str, Any]] | None:
    if err.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return None
    reasons: Any = err.response.get("CancellationReasons") or []
    return list(reasons)


class EntitlementRepository:
    """The only entitlement code that speaks boto3. Methods return False / None when a condition
    fails; they never retry on their own (boto3's standard retry mode handles throttling)."""

    def __init__(self, settings: Settings, client: Any = None) -> None:
        self._table = settings.billing_table_name
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or clients.dynamodb()

    # --- plan ---------------------------------------------------------------------------------

    def get_plan(self, tenant_id: str) -> TenantPlan | None:
        item = self.client.get_item(TableName=self._table, Key=plan_key(tenant_id), ConsistentRead=True).get("Item")
        return plan_from_item(item) if item else None

    def tenant_known(self, tenant_id: str) -> bool:
        """True when the tenant has a plan, a billing profile or an API key."""
        response = self.client.batch_get_item(
            RequestItems={
                self._table: {
                    "Keys": [plan_key(tenant_id), profile_key(tenant_id)],
                    "ProjectionExpression": "pk",
                    "ConsistentRead": True,
                }
            }
        )
        if response.get("Responses", {}).get(self._table):
            return True
        keys = self.client.query(
            TableName=self._table,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :g",
            ExpressionAttributeValues={":g": _s(f"TENANT#{tenant_id}#APIKEYS")},
            Limit=1,
        )
        return bool(keys.get("Items"))

    def put_plan(self, plan: TenantPlan, now: datetime) -> bool:
        """Write the PLAN item; with a source version, only over an older (or equal) version."""
        kwargs: dict[str, Any] = {"TableName": self._table, "Item": plan_to_item(plan, now)}
        if plan.source_version is not None:
            kwargs["ConditionExpression"] = "attribute_not_exists(source_version) OR source_version <= :v"
            kwargs["ExpressionAttributeValues"] = {":v": _n(plan.source_version)}
        try:
            self.client.put_item(**kwargs)
        except ClientError as err:
            if lost_race(err):
                return False
            raise
        return True

    # --- counters: reads ----------------------------------------------------------------------

    def get_counter_item(self, key: Item) -> Item | None:
        item: Item | None = self.client.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
        return item

    def get_counter(self, tenant_id: str, resource_type: str, shard: int = 0, shards: int = 1) -> QuotaCounter | None:
        item = self.get_counter_item(counter_key(tenant_id, resource_type, shard, shards))
        return counter_from_item(item) if item else None

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

    # --- counters: the hot path ---------------------------------------------------------------

    def consume(
        self, key: Item, quantity: Decimal, now: datetime, *, enforce: bool
    ) -> tuple[QuotaCounter | None, Item | None]:
        """THE hot path: one conditional UpdateItem. Returns (counter after, None) when granted, or
        (None, the item as it was) when the condition failed (None item: no counter yet)."""
        try:
            response = _update_item(
                self.client,
                TableName=self._table,
                Key=key,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **self._consume_expression(quantity, now, enforce=enforce),
            )
        except ClientError as err:
            if lost_race(err):
                old: Item | None = err.response.get("Item")  # type: ignore[assignment]
                return None, old
            raise
        return counter_from_item(response["Attributes"]), None

    @staticmethod
    def _consume_expression(quantity: Decimal, now: datetime, *, enforce: bool) -> dict[str, Any]:
        condition = "#st = :active AND #pe > :now"
        values = {":q": _n(quantity), ":now": _n(to_epoch(now)), ":active": _s(CounterState.ACTIVE.value)}
        names = {"#rem": "remaining", "#used": "used", "#st": "state", "#pe": "period_end"}
        if enforce:
            # Soft and unlimited quotas pass and count; hard ones need the quantity left.
            condition += " AND (#rem >= :q OR #pol <> :hard)"
            values[":hard"] = _s(QuotaPolicy.HARD.value)
            names["#pol"] = "policy"
        return {
            "UpdateExpression": "SET #rem = #rem - :q, #used = #used + :q",
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    # --- idempotent consumes ------------------------------------------------------------------

    def consume_once(
        self, key: Item, quantity: Decimal, now: datetime, *, enforce: bool, record: ConsumeRecord
    ) -> KeyedTake:
        """Consume and store the consume record in one transaction, so a retried key consumes once."""
        expression = self._consume_expression(quantity, now, enforce=enforce)
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": key,
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                            **expression,
                        }
                    },
                    self._record_put(record),
                ]
            )
        except ClientError as err:
            reasons = _cancel_reasons(err)
            if reasons is None:
                raise
            return self._keyed_failure(reasons, record, counter_index=0, key=key)
        return KeyedTake(granted=True)

    def _keyed_failure(
        self, reasons: list[dict[str, Any]], record: ConsumeRecord, *, counter_index: int, key: Item | None
    ) -> KeyedTake:
        codes = [r.get("Code") for r in reasons]
        record_reason = reasons[-1] if reasons else {}
        if record_reason.get("Code") == "ConditionalCheckFailed":
            existing = record_reason.get("Item") or self.get_consume_record_item(
                record.tenant_id, record.idempotency_key
            )
            return KeyedTake(granted=False, existing_record=self.record_from_item(existing) if existing else None)
        if "TransactionConflict" in codes or not reasons:
            return KeyedTake(granted=False, conflict=True)
        counter_reason = reasons[counter_index] if len(reasons) > counter_index else {}
        if counter_reason.get("Code") == "ConditionalCheckFailed":
            item = counter_reason.get("Item") or (self.get_counter_item(key) if key else None)
            return KeyedTake(granted=False, counter_item=item)
        return KeyedTake(granted=False, conflict=True)

    def _record_put(self, record: ConsumeRecord) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self._table,
                "Item": self._record_item(record),
                "ConditionExpression": "attribute_not_exists(pk)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def _record_item(self, record: ConsumeRecord) -> Item:
        item: Item = {
            **consume_record_key(record.tenant_id, record.idempotency_key),
            "tenant_id": _s(record.tenant_id),
            "idempotency_key": _s(record.idempotency_key),
            "resource_type": _s(record.resource_type),
            "quantity": _n(record.quantity),
            "consumed_at": _n(to_epoch(record.consumed_at)),
            "shards": {"L": [{"L": [_n(s), _n(q)]} for s, q in record.shards]},
            "layout": _n(record.layout),
            "released": {"BOOL": record.released},
            "expires_at": _n(to_epoch(record.consumed_at + timedelta(days=CONSUME_RECORD_DAYS))),
        }
        if record.answer is not None:
            item["answer"] = _s(json.dumps(record.answer.to_dict()))
        return item

    def get_consume_record_item(self, tenant_id: str, idempotency_key: str) -> Item | None:
        item: Item | None = self.client.get_item(
            TableName=self._table, Key=consume_record_key(tenant_id, idempotency_key), ConsistentRead=True
        ).get("Item")
        return item

    def get_consume_record(self, tenant_id: str, idempotency_key: str) -> ConsumeRecord | None:
        item = self.get_consume_record_item(tenant_id, idempotency_key)
        return self.record_from_item(item) if item else None

    @staticmethod
    def record_from_item(item: Item) -> ConsumeRecord:
        key = item["idempotency_key"]["S"]
        answer = None
        if "answer" in item:
            answer = EntitlementCheck.from_dict(json.loads(item["answer"]["S"]), idempotency_key=key)
        return ConsumeRecord(
            tenant_id=item["tenant_id"]["S"],
            idempotency_key=key,
            resource_type=item["resource_type"]["S"],
            quantity=_dec(item["quantity"]),
            consumed_at=from_epoch(int(item["consumed_at"]["N"])),
            shards=tuple((int(p["L"][0]["N"]), _dec(p["L"][1])) for p in item.get("shards", {}).get("L", [])),
            layout=int(item.get("layout", {"N": "1"})["N"]),
            answer=answer,
            released=bool(item.get("released", {}).get("BOOL", False)),
        )

    def put_consume_record(self, record: ConsumeRecord) -> bool:
        """Store a record on its own (a denied idempotent consume), only if the key is new."""
        try:
            self.client.put_item(
                TableName=self._table, Item=self._record_item(record), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as err:
            if lost_race(err):
                return False
            raise
        return True

    def save_answer(self, tenant_id: str, idempotency_key: str, answer: EntitlementCheck) -> None:
        """Store the answer a replay returns (first writer wins)."""
        _update_item(
            self.client,
            TableName=self._table,
            Key=consume_record_key(tenant_id, idempotency_key),
            UpdateExpression="SET answer = if_not_exists(answer, :a)",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":a": _s(json.dumps(answer.to_dict()))},
        )

    def take_from_shards(
        self, takes: list[tuple[QuotaCounter, Decimal]], now: datetime, record: ConsumeRecord | None
    ) -> KeyedTake:
        """Take a quantity spread over several shards, all or nothing (one transaction), each shard
        still conditioned on `remaining >= take`: a refused transaction has changed nothing."""
        items: list[dict[str, Any]] = []
        for counter, take in takes:
            key = counter_key(counter.tenant_id, counter.resource_type, counter.shard, counter.shards)
            expression = self._consume_expression(take, now, enforce=True)
            items.append({"Update": {"TableName": self._table, "Key": key, **expression}})
        if record is not None:
            items.append(self._record_put(record))
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as err:
            reasons = _cancel_reasons(err)
            if reasons is None:
                raise
            if record is not None:
                outcome = self._keyed_failure(reasons, record, counter_index=0, key=None)
                if outcome.existing_record is not None:
                    return outcome
            return KeyedTake(granted=False, conflict=True)
        return KeyedTake(granted=True)

    # --- counters: provisioning, periods and plan terms ---------------------------------------

    def rollover(self, counter: QuotaCounter, start: datetime, end: datetime, now: datetime) -> bool:
        """Start a new period, only if the counter still ends where the caller saw it end: of many
        racing resets exactly one succeeds, so a period is never granted twice."""
        try:
            _update_item(
                self.client,
                TableName=self._table,
                Key=counter_key(counter.tenant_id, counter.resource_type, counter.shard, counter.shards),
                UpdateExpression="SET #used = :zero, #rem = #lim, #ps = :ps, #pe = :pe, updated_at = :at",
                ConditionExpression="#pe = :old",
                ExpressionAttributeNames={k: _NAMES[k] for k in ("#used", "#rem", "#lim", "#ps", "#pe")},
                ExpressionAttributeValues={
                    ":zero": _n(ZERO),
                    ":ps": _n(to_epoch(start)),
                    ":pe": _n(to_epoch(end)),
                    ":old": _n(to_epoch(counter.period_end)),
                    ":at": _s(now.isoformat()),
                },
            )
        except ClientError as err:
            if lost_race(err):
                return False
            raise
        return True

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
            ":lim": _n(limit),
            ":pol": _s(policy.value),
            ":plan": _s(plan_id),
            ":ps": _n(to_epoch(period_start)),
            ":pe": _n(to_epoch(period_end)),
            ":old": _n(to_epoch(existing.period_end)),
            ":active": _s(CounterState.ACTIVE.value),
            ":at": _s(now.isoformat()),
        }
        sets = ["#lim = :lim", "#pol = :pol", "plan_id = :plan", "#ps = :ps", "#pe = :pe", "#st = :active"]
        sets.append("updated_at = :at")
        if reset:
            values[":zero"] = _n(ZERO)
            sets += ["#used = :zero", "#rem = :lim"]
        else:
            sets.append("#rem = :lim - #used")
        remove = " REMOVE current_shards"
        if total_limit is not None:
            values[":tl"] = _n(total_limit)
            sets.append("total_limit = :tl")
        else:
            remove += ", total_limit"
        try:
            _update_item(
                self.client,
                TableName=self._table,
                Key=counter_key(existing.tenant_id, existing.resource_type, existing.shard, existing.shards),
                UpdateExpression="SET " + ", ".join(sets) + remove,
                ConditionExpression="#pe = :old",
                ExpressionAttributeNames={k: _NAMES[k] for k in ("#lim", "#pol", "#ps", "#pe", "#st", "#used", "#rem")},
                ExpressionAttributeValues=values,
            )
        except ClientError as err:
            if lost_race(err):
                return False
            raise
        return True

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
                {":retired": _s(CounterState.RETIRED.value), ":cur": _n(current), ":at": _s(now.isoformat())}
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
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as err:
            if _cancel_reasons(err) is not None:
                return False
            raise
        return True

    @staticmethod
    def _seen_condition(seen: QuotaCounter | None) -> dict[str, Any]:
        if seen is None:
            # Absent, or left retired by an earlier layout that used the same key.
            return {
                "ConditionExpression": "attribute_not_exists(pk) OR #st = :seen_retired",
                "ExpressionAttributeNames": {"#st": "state"},
                "ExpressionAttributeValues": {":seen_retired": _s(CounterState.RETIRED.value)},
            }
        return {
            "ConditionExpression": "#used = :seen_used AND #pe = :seen_pe AND #st = :seen_st",
            "ExpressionAttributeNames": {"#used": "used", "#pe": "period_end", "#st": "state"},
            "ExpressionAttributeValues": {
                ":seen_used": _n(seen.used),
                ":seen_pe": _n(to_epoch(seen.period_end)),
                ":seen_st": _s(seen.state.value),
            },
        }

    def retire(self, counter: QuotaCounter, current_shards: int, now: datetime) -> bool:
        """Freeze a live counter: RETIRED (no consume passes its condition any more), pointing at the
        layout now in force. Conditioned on the state only, so it succeeds however busy the counter
        is; its `used` is final from then on."""
        try:
            _update_item(
                self.client,
                TableName=self._table,
                Key=counter_key(counter.tenant_id, counter.resource_type, counter.shard, counter.shards),
                UpdateExpression="SET #st = :retired, current_shards = :cur, updated_at = :at",
                ConditionExpression="#st IN (:active, :suspended)",
                ExpressionAttributeNames={"#st": "state"},
                ExpressionAttributeValues={
                    ":retired": _s(CounterState.RETIRED.value),
                    ":cur": _n(current_shards),
                    ":at": _s(now.isoformat()),
                    ":active": _s(CounterState.ACTIVE.value),
                    ":suspended": _s(CounterState.SUSPENDED.value),
                },
            )
        except ClientError as err:
            if lost_race(err):
                return False
            raise
        return True

    def set_state(self, counter: QuotaCounter, state: CounterState, now: datetime) -> bool:
        """Move a live counter between active and suspended (never touches a retired one)."""
        try:
            _update_item(
                self.client,
                TableName=self._table,
                Key=counter_key(counter.tenant_id, counter.resource_type, counter.shard, counter.shards),
                UpdateExpression="SET #st = :st, updated_at = :at",
                ConditionExpression="#st IN (:active, :suspended)",
                ExpressionAttributeNames={"#st": "state"},
                ExpressionAttributeValues={
                    ":st": _s(state.value),
                    ":at": _s(now.isoformat()),
                    ":active": _s(CounterState.ACTIVE.value),
                    ":suspended": _s(CounterState.SUSPENDED.value),
                },
            )
        except ClientError as err:
            if lost_race(err):
                return False
            raise
        return True

    # --- releases -----------------------------------------------------------------------------

    def release(
        self, key: Item, quantity: Decimal, *, period_end: datetime | None = None
    ) -> tuple[QuotaCounter | None, Item | None]:
        """Give `quantity` back to one counter, only if it has at least that much used (never below
        zero) and, with `period_end`, only while it is still in that period. Returns (counter after,
        None) or (None, the item as it was when the condition failed)."""
        # Never into a retired counter: its usage is final (carried into the layout in force).
        values: dict[str, Any] = {":q": _n(quantity), ":retired": _s(CounterState.RETIRED.value)}
        names = {"#rem": "remaining", "#used": "used", "#st": "state"}
        condition = "#used >= :q AND #st <> :retired"
        if period_end is not None:
            condition += " AND #pe = :pe"
            values[":pe"] = _n(to_epoch(period_end))
            names["#pe"] = "period_end"
        try:
            response = _update_item(
                self.client,
                TableName=self._table,
                Key=key,
                UpdateExpression="SET #rem = #rem + :q, #used = #used - :q",
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as err:
            if lost_race(err):
                old: Item | None = err.response.get("Item")  # type: ignore[assignment]
                return None, old
            raise
        return counter_from_item(response["Attributes"]), None

    def release_once(self, record: ConsumeRecord) -> bool:
        """Give back what an idempotent consume took, exactly once: marks the record released in the
        same transaction. Refused (False) when already released or the period has moved on."""
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
                        "ExpressionAttributeNames": {k: _NAMES[k] for k in ("#rem", "#used", "#ps", "#pe", "#st")},
                        "ExpressionAttributeValues": {
                            ":q": _n(quantity),
                            ":at": _n(to_epoch(record.consumed_at)),
                            ":retired": _s(CounterState.RETIRED.value),
                        },
                    }
                }
            )
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as err:
            if _cancel_reasons(err) is not None:
                return False
            raise
        return True


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)
