"""DynamoDB access for entitlements: the tenant's PLAN item, quota counters, consume records.

Item layout (billing table, single-table design):
- `TENANT#<tid>` / `PLAN`: plan id, status, features, period, counter layout, source version.
- `QUOTA#<tid>#<resource>` / `COUNTER` (one shard) or `QUOTA#<tid>#<resource>#<i>` / `COUNTER`
  (sharded): its own partition per counter, so a tenant's counters never share a partition key.
- `CONSUME#<tid>#<key>` / `CONSUME`: an idempotent consume's answer (TTL `expires_at`).

Every quota change is a conditional write; numbers go to DynamoDB as Decimal strings, never floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from billing_platform import clients
from billing_platform.catalog.models import QuotaPolicy
from billing_platform.entitlements.models import (
    ZERO,
    CounterState,
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
    """The stored answer of an idempotent consume."""

    tenant_id: str
    idempotency_key: str
    resource_type: str
    quantity: Decimal
    period_end: datetime
    shards: tuple[tuple[int, Decimal], ...]  # (shard, quantity taken from it)
    layout: int
    answer: Item | None
    released: bool


def _is_conditional_failure(err: ClientError) -> bool:
    return err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


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
        """True when the tenant has a plan or a billing profile."""
        response = self.client.batch_get_item(
            RequestItems={
                self._table: {
                    "Keys": [plan_key(tenant_id), profile_key(tenant_id)],
                    "ProjectionExpression": "pk",
                }
            }
        )
        return bool(response.get("Responses", {}).get(self._table))

    def put_plan(self, plan: TenantPlan, now: datetime) -> bool:
        """Write the PLAN item; with a source version, only over an older (or equal) version."""
        kwargs: dict[str, Any] = {"TableName": self._table, "Item": plan_to_item(plan, now)}
        if plan.source_version is not None:
            kwargs["ConditionExpression"] = "attribute_not_exists(source_version) OR source_version <= :v"
            kwargs["ExpressionAttributeValues"] = {":v": _n(plan.source_version)}
        try:
            self.client.put_item(**kwargs)
        except ClientError as err:
            if _is_conditional_failure(err):
                return False
            raise
        return True

    # --- counters -----------------------------------------------------------------------------

    def get_counter(self, tenant_id: str, resource_type: str, shard: int = 0, shards: int = 1) -> QuotaCounter | None:
        item = self.client.get_item(
            TableName=self._table, Key=counter_key(tenant_id, resource_type, shard, shards), ConsistentRead=True
        ).get("Item")
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

    def consume(
        self, key: Item, quantity: Decimal, now: datetime, *, enforce: bool
    ) -> tuple[QuotaCounter | None, Item | None]:
        """THE hot path: one conditional UpdateItem. Returns (counter after, None) when granted, or
        (None, the item as it was) when the condition failed (None item: no counter yet)."""
        try:
            response = self.client.update_item(
                TableName=self._table,
                Key=key,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **self._consume_expression(quantity, now, enforce=enforce),
            )
        except ClientError as err:
            if _is_conditional_failure(err):
                return None, err.response.get("Item")
            raise
        return counter_from_item(response["Attributes"]), None

    @staticmethod
    def _consume_expression(quantity: Decimal, now: datetime, *, enforce: bool) -> dict[str, Any]:
        condition = "#st = :active AND #pe > :now"
        values = {":q": _n(quantity), ":now": _n(to_epoch(now)), ":active": _s(CounterState.ACTIVE.value)}
        if enforce:
            # Soft and unlimited quotas pass and count; hard ones need the quantity left.
            condition += " AND (#rem >= :q OR #pol <> :hard)"
            values[":hard"] = _s(QuotaPolicy.HARD.value)
        names = {k: v for k, v in _NAMES.items() if k in condition or k in ("#rem", "#used")}
        return {
            "UpdateExpression": "SET #rem = #rem - :q, #used = #used + :q",
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def consume_once(
        self,
        key: Item,
        quantity: Decimal,
        now: datetime,
        *,
        enforce: bool,
        record: ConsumeRecord,
    ) -> tuple[bool, Item | None, Item | None]:
        """Consume and store the consume record in one transaction, so a retried key consumes once.
        Returns (granted, existing consume record or None, counter item as it was when refused)."""
        expression = self._consume_expression(quantity, now, enforce=enforce)
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {"Update": {"TableName": self._table, "Key": key, **expression}},
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": self._record_item(record),
                            "ConditionExpression": "attribute_not_exists(pk)",
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    },
                ]
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = err.response.get("CancellationReasons") or []
            if len(reasons) > 1 and reasons[1].get("Code") == "ConditionalCheckFailed":
                existing = reasons[1].get("Item")
                return False, existing or self.get_consume_record_item(record.tenant_id, record.idempotency_key), None
            if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                return False, None, reasons[0].get("Item") or self.get_counter_item(key)
            raise
        return True, None, None

    def get_counter_item(self, key: Item) -> Item | None:
        item: Item | None = self.client.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
        return item

    def _record_item(self, record: ConsumeRecord) -> Item:
        item: Item = {
            **consume_record_key(record.tenant_id, record.idempotency_key),
            "tenant_id": _s(record.tenant_id),
            "resource_type": _s(record.resource_type),
            "quantity": _n(record.quantity),
            "period_end": _n(to_epoch(record.period_end)),
            "shards": {"L": [{"L": [_n(s), _n(q)]} for s, q in record.shards]},
            "layout": _n(record.layout),
            "released": {"BOOL": record.released},
            "expires_at": _n(to_epoch(record.period_end + timedelta(days=CONSUME_RECORD_DAYS))),
        }
        if record.answer is not None:
            item["answer"] = {"M": record.answer}
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
        return ConsumeRecord(
            tenant_id=item["tenant_id"]["S"],
            idempotency_key=item["pk"]["S"].split("#", 2)[2],
            resource_type=item["resource_type"]["S"],
            quantity=_dec(item["quantity"]),
            period_end=from_epoch(int(item["period_end"]["N"])),
            shards=tuple((int(p["L"][0]["N"]), _dec(p["L"][1])) for p in item.get("shards", {}).get("L", [])),
            layout=int(item.get("layout", {"N": "1"})["N"]),
            answer=item["answer"]["M"] if "answer" in item else None,
            released=bool(item.get("released", {}).get("BOOL", False)),
        )

    def put_consume_record(self, record: ConsumeRecord) -> bool:
        """Store a record outside a transaction (multi-shard takes), only if the key is new."""
        try:
            self.client.put_item(
                TableName=self._table, Item=self._record_item(record), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as err:
            if _is_conditional_failure(err):
                return False
            raise
        return True

    def save_answer(self, tenant_id: str, idempotency_key: str, answer: Item) -> None:
        self.client.update_item(
            TableName=self._table,
            Key=consume_record_key(tenant_id, idempotency_key),
            UpdateExpression="SET answer = if_not_exists(answer, :a)",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":a": {"M": answer}},
        )

    def take_from_shards(
        self, takes: list[tuple[QuotaCounter, Decimal]], now: datetime, record: ConsumeRecord | None
    ) -> bool:
        """Take a quantity spread over several shards, all or nothing (one transaction), each shard
        still conditioned on `remaining >= take`: a refused transaction has changed nothing."""
        items: list[dict[str, Any]] = []
        for counter, take in takes:
            key = counter_key(counter.tenant_id, counter.resource_type, counter.shard, counter.shards)
            items.append({"Update": {"TableName": self._table, "Key": key, **self._consume_expression(take, now, enforce=True)}})
        if record is not None:
            items.append(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": self._record_item(record),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                return False
            raise
        return True

    def create_counter(self, counter: QuotaCounter, now: datetime) -> bool:
        """Create a missing counter (attribute_not_exists: two creators never both succeed)."""
        try:
            self.client.put_item(
                TableName=self._table,
                Item=counter_to_item(counter, now),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as err:
            if _is_conditional_failure(err):
                return False
            raise
        return True

    def rollover(self, counter: QuotaCounter, start: datetime, end: datetime, now: datetime) -> bool:
        """Start a new period, only if the counter still ends where the caller saw it end: of many
        racing resets exactly one succeeds, so a period is never granted twice."""
        try:
            self.client.update_item(
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
            if _is_conditional_failure(err):
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
        new_period: bool,
        carry: Decimal,
        now: datetime,
    ) -> bool:
        """Apply a plan to an existing counter, conditioned on the period the caller saw:
        a new period starts at used=carry; the same period keeps `used` (plus carry) and sets
        remaining = limit - used, atomically with concurrent consumes."""
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
        if new_period:
            values[":used"] = _n(carry)
            values[":rem"] = _n(limit - carry)
            sets += ["#used = :used", "#rem = :rem"]
        else:
            values[":carry"] = _n(carry)
            values[":lmc"] = _n(limit - carry)
            sets += ["#used = #used + :carry", "#rem = :lmc - #used"]
        remove = ""
        if total_limit is not None:
            values[":tl"] = _n(total_limit)
            sets.append("total_limit = :tl")
        else:
            remove = " REMOVE total_limit"
        try:
            self.client.update_item(
                TableName=self._table,
                Key=counter_key(existing.tenant_id, existing.resource_type, existing.shard, existing.shards),
                UpdateExpression="SET " + ", ".join(sets) + remove,
                ConditionExpression="#pe = :old",
                ExpressionAttributeNames={k: _NAMES[k] for k in ("#lim", "#pol", "#ps", "#pe", "#st", "#used", "#rem")},
                ExpressionAttributeValues=values,
            )
        except ClientError as err:
            if _is_conditional_failure(err):
                return False
            raise
        return True

    def set_state(self, key: Item, state: CounterState, now: datetime) -> QuotaCounter | None:
        """Mark a counter active / suspended / retired; returns it as it is afterwards (None: absent)."""
        try:
            response = self.client.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression="SET #st = :st, updated_at = :at",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#st": "state"},
                ExpressionAttributeValues={":st": _s(state.value), ":at": _s(now.isoformat())},
                ReturnValues="ALL_NEW",
            )
        except ClientError as err:
            if _is_conditional_failure(err):
                return None
            raise
        return counter_from_item(response["Attributes"])

    def release(self, counter: QuotaCounter, quantity: Decimal, *, seen_used: Decimal | None) -> QuotaCounter | None:
        """Give `quantity` back to one counter without taking `used` below zero. Without `seen_used`
        the condition is `used >= :q`; with it, the counter must still be at the `used` the caller read
        (optimistic clamp). None when the condition failed."""
        values: dict[str, Any] = {":q": _n(quantity), ":pe": _n(to_epoch(counter.period_end))}
        if seen_used is None:
            condition = "#used >= :q AND #pe = :pe"
        else:
            condition = "#used = :seen AND #pe = :pe"
            values[":seen"] = _n(seen_used)
        try:
            response = self.client.update_item(
                TableName=self._table,
                Key=counter_key(counter.tenant_id, counter.resource_type, counter.shard, counter.shards),
                UpdateExpression="SET #rem = #rem + :q, #used = #used - :q",
                ConditionExpression=condition,
                ExpressionAttributeNames={k: _NAMES[k] for k in ("#rem", "#used", "#pe")},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as err:
            if _is_conditional_failure(err):
                return None
            raise
        return counter_from_item(response["Attributes"])

    def release_once(self, record: ConsumeRecord, counters: list[tuple[QuotaCounter, Decimal]]) -> bool:
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
        for counter, quantity in counters:
            items.append(
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": counter_key(counter.tenant_id, counter.resource_type, counter.shard, counter.shards),
                        "UpdateExpression": "SET #rem = #rem + :q, #used = #used - :q",
                        "ConditionExpression": "#used >= :q AND #pe = :pe",
                        "ExpressionAttributeNames": {k: _NAMES[k] for k in ("#rem", "#used", "#pe")},
                        "ExpressionAttributeValues": {":q": _n(quantity), ":pe": _n(to_epoch(record.period_end))},
                    }
                }
            )
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                return False
            raise
        return True


def utc_now() -> datetime:
    return datetime.now(UTC)
