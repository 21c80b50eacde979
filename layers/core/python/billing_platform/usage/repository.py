"""DynamoDB access for usage: raw records (usage table), the read model (aggregates table: day items,
the values registry, progress; layout in `usage.layout`). The only usage code that speaks boto3.

usage table (one item per record, written with BatchWriteItem, TTL `expires_at`)
    pk `USAGE#<nn>`  nn = (h(tenant, resource) + h(record id) mod RAW_SPREAD) mod RAW_PARTITIONS: the
                     records of one tenant x resource land on RAW_SPREAD neighbouring partition keys (so
                     a hot pair gets RAW_SPREAD x ~1,000 writes/s), and the aggregator, which groups a
                     batch by item, finds them together and coalesces them into few writes. A day item
                     therefore carries at most RAW_SPREAD watermarks.
    sk `<tenant>#<record id>`
    The key holds no timestamp or quantity, so a redelivered record lands on the same item even if its
    payload changed: the rewrite is a MODIFY, which the aggregator never counts. (A record id reused
    with another resource type is another record.)
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from billing_platform import clients
from billing_platform.conditions import cancellation, condition_failed
from billing_platform.dynamodb import BillingTable, query_items, query_sort_key_range
from billing_platform.errors import UsageWriteIncomplete
from billing_platform.settings import Settings, get_settings
from billing_platform.usage.layout import (
    PROGRESS_PK,
    DayCells,
    DayKey,
    day_pk,
    day_sk,
    decode_day,
    encode_seq,
    registry_sk,
    top_pk,
)
from billing_platform.usage.models import Granularity, UsageRecord

RAW_PARTITIONS = 64
RAW_SPREAD = 4
BATCH_WRITE_MAX = 25
TRANSACT_MAX = 100
BATCH_GET_MAX = 100
WRITE_WORKERS = 8

_In = TypeVar("_In")
_Out = TypeVar("_Out")


def _hash32(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def raw_key(tenant_id: str, resource_type: str, record_id: str) -> dict[str, str]:
    spread = _hash32(f"{tenant_id}#{record_id}") % RAW_SPREAD
    bucket = (_hash32(f"{tenant_id}#{resource_type}") + spread) % RAW_PARTITIONS
    return {"pk": f"USAGE#{bucket:02d}", "sk": f"{tenant_id}#{record_id}"}


def raw_item(record: UsageRecord, ttl: timedelta) -> dict[str, Any]:
    """The raw item: a pure function of the record (expiry from the record's own timestamp, no write
    time), so rewriting it changes nothing and DynamoDB emits no stream record."""
    key = raw_key(record.tenant_id, record.resource_type, record.record_id)
    item: dict[str, Any] = {
        "pk": {"S": key["pk"]},
        "sk": {"S": key["sk"]},
        "record_id": {"S": record.record_id},
        "tenant_id": {"S": record.tenant_id},
        "resource_type": {"S": record.resource_type},
        "quantity": {"N": str(record.quantity)},
        "ts": {"S": record.timestamp.isoformat()},
        "expires_at": {"N": str(int((record.timestamp + ttl).timestamp()))},
    }
    if record.metadata:
        item["metadata"] = {"S": json.dumps(record.metadata, separators=(",", ":"), sort_keys=True)}
    if record.dimensions:
        item["dims"] = {"M": {name: {"S": value} for name, value in sorted(record.dimensions.items())}}
    if record.entity_id is not None:
        item["entity"] = {"S": record.entity_id}
    return item


class UsageRecordRepository:
    """Writes raw usage records. Unprocessed items (throttling) are retried with jittered exponential
    backoff, which boto3 does not do for BatchWriteItem; what is still unwritten raises."""

    def __init__(
        self,
        settings: Settings | None = None,
        client: Any = None,
        *,
        max_attempts: int = 6,
        base_delay: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings or get_settings()
        self._client = client
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._sleep = sleep

    @property
    def client(self) -> Any:
        return self._client or clients.dynamodb()

    def put_records(self, records: Sequence[UsageRecord]) -> int:
        """Write every record (duplicates of one key keep the first). Returns the items written."""
        ttl = timedelta(days=self._settings.usage_record_ttl_days)
        items: dict[tuple[str, str], dict[str, Any]] = {}
        for record in records:
            key = raw_key(record.tenant_id, record.resource_type, record.record_id)
            items.setdefault((key["pk"], key["sk"]), raw_item(record, ttl))
        pending = list(items.values())
        for start in range(0, len(pending), BATCH_WRITE_MAX):
            self._write_chunk(pending[start : start + BATCH_WRITE_MAX])
        return len(pending)

    def _write_chunk(self, chunk: list[dict[str, Any]]) -> None:
        table = self._settings.usage_table_name
        requests: list[dict[str, Any]] = [{"PutRequest": {"Item": item}} for item in chunk]
        for attempt in range(self._max_attempts):
            response = self.client.batch_write_item(RequestItems={table: requests})
            requests = response.get("UnprocessedItems", {}).get(table, [])
            if not requests:
                return
            if attempt + 1 < self._max_attempts:
                self._sleep(min(2.0, self._base_delay * 2**attempt) * (0.5 + random.random() / 2))
        raise UsageWriteIncomplete(
            f"{len(requests)} usage records stayed unprocessed after {self._max_attempts} attempts",
            details={"unprocessed": len(requests)},
        )


@dataclass
class DayDelta:
    """What one write adds to one day item (attribute -> quantity), and for each usage partition key
    (watermark attribute) the first and last sequence numbers it covers: the write succeeds only if every
    such watermark is still below its first, and moves it to its last."""

    day: DayKey
    adds: dict[str, Decimal]
    watermarks: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass
class WriteOutcome:
    """Indexes into the deltas given to `write_days`: refused by a watermark (some of it was applied
    before), to be sent again as they are (a transaction cancelled by a neighbour), or failed."""

    stale: list[int] = field(default_factory=list)
    again: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    requests: int = 0


def _placeholder(i: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        i, rest = divmod(i, 36)
        out = digits[rest] + out
        if not i:
            return out


class AggregateRepository(BillingTable):
    """The read model in the aggregates table: day items with their watermarks, the values registry and
    the progress item; and the reads behind every usage answer."""

    def __init__(self, settings: Settings | None = None, client: Any = None) -> None:
        super().__init__(settings, client)
        self._pool: ThreadPoolExecutor | None = None

    @property
    def table(self) -> str:
        return self._settings.aggregates_table_name

    # ------------------------------------------------------------------------------------ writes

    def day_update(self, delta: DayDelta) -> dict[str, Any]:
        """One write (a transaction item; its "Update" is also an UpdateItem request): add each quantity
        to its counter, set the index keys, and advance the given watermarks, only if each is still
        below the first sequence number this write covers for that usage partition key."""
        names: dict[str, str] = {"#tp": "top_pk", "#ts": "top_sk"}
        values: dict[str, Any] = {
            ":tp": {"S": top_pk(delta.day.resource_type, delta.day.day)},
            ":ts": {"S": delta.day.tenant_id},
        }
        adds = []
        for i, (attribute, quantity) in enumerate(sorted(delta.adds.items())):
            tag = _placeholder(i)
            names[f"#{tag}"] = attribute
            values[f":{tag}"] = {"N": format(quantity, "f")}
            adds.append(f"#{tag} :{tag}")
        sets = ["#tp = :tp", "#ts = :ts"]
        conditions = []
        for i, (attribute, (first, last)) in enumerate(sorted(delta.watermarks.items())):
            names[f"#w{i}"] = attribute
            values[f":f{i}"] = {"B": encode_seq(first)}
            values[f":l{i}"] = {"B": encode_seq(last)}
            sets.append(f"#w{i} = :l{i}")
            conditions.append(f"(attribute_not_exists(#w{i}) OR #w{i} < :f{i})")
        update: dict[str, Any] = {
            "TableName": self.table,
            "Key": delta.day.key(),
            "UpdateExpression": "ADD " + ", ".join(adds) + " SET " + ", ".join(sets),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if conditions:
            update["ConditionExpression"] = " AND ".join(conditions)
        return {"Update": update}

    def transact(self, items: list[dict[str, Any]]) -> None:
        self.client.transact_write_items(TransactItems=items)

    def write_days(self, deltas: Sequence[DayDelta]) -> WriteOutcome:
        """Send the deltas (one per item), in parallel, the way settings say (`usage_aggregate_writes`).
        Each delta stands alone: a refused one never undoes another. Errors other than DynamoDB refusals
        propagate."""
        outcome = WriteOutcome()
        if not deltas:
            return outcome
        if self._settings.usage_aggregate_writes == "single":
            units = [[i] for i in range(len(deltas))]
            send = self._send_single
        else:
            units = [list(range(s, min(s + TRANSACT_MAX, len(deltas)))) for s in range(0, len(deltas), TRANSACT_MAX)]
            send = self._send_transaction
        for part in self.parallel(lambda unit: send(unit, deltas), units):
            outcome.stale += part.stale
            outcome.again += part.again
            outcome.failed += part.failed
            outcome.requests += part.requests
        return outcome

    def parallel(self, fn: Callable[[_In], _Out], items: list[_In]) -> list[_Out]:
        """fn over items on the container's worker threads. Every call finishes before the first error
        (if any) is raised, so nothing is still writing when the caller reports or retries."""
        if len(items) <= 1:
            return [fn(item) for item in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=WRITE_WORKERS, thread_name_prefix="aggregates")
        futures = [self._pool.submit(fn, item) for item in items]
        errors = [f.exception() for f in futures]
        for error in errors:
            if error is not None:
                raise error
        return [f.result() for f in futures]

    def _send_single(self, unit: list[int], deltas: Sequence[DayDelta]) -> WriteOutcome:
        (index,) = unit
        try:
            self.client.update_item(**self.day_update(deltas[index])["Update"])
        except ClientError as exc:
            if condition_failed(exc):
                return WriteOutcome(stale=[index], requests=1)
            return WriteOutcome(failed=[index], requests=1)
        return WriteOutcome(requests=1)

    def _send_transaction(self, unit: list[int], deltas: Sequence[DayDelta]) -> WriteOutcome:
        try:
            self.transact([self.day_update(deltas[i]) for i in unit])
        except ClientError as exc:
            refused = cancellation(exc)
            if refused is None or refused.reasons != len(unit):
                return WriteOutcome(failed=list(unit), requests=1)
            out = WriteOutcome(requests=1)
            for position, index in enumerate(unit):
                if position in refused.failed:
                    out.stale.append(index)
                elif position in refused.fine | refused.conflicted:
                    out.again.append(index)  # fine itself, or raced a concurrent writer: send again
                else:
                    out.failed.append(index)
            return out
        return WriteOutcome(requests=1)

    def get_watermarks(self, days: Iterable[DayKey], attributes: Iterable[str]) -> dict[DayKey, dict[str, bytes]]:
        """For each day item, its watermark attributes among `attributes` (strongly consistent reads)."""
        wanted = list(dict.fromkeys(days))
        names = {f"#w{i}": a for i, a in enumerate(sorted(set(attributes)))}
        by_key = {(d.key()["pk"]["S"], d.key()["sk"]["S"]): d for d in wanted}
        found: dict[DayKey, dict[str, bytes]] = {}
        for start in range(0, len(wanted), BATCH_GET_MAX):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [d.key() for d in wanted[start : start + BATCH_GET_MAX]],
                    "ConsistentRead": True,
                    "ProjectionExpression": ", ".join(["pk", "sk", *names]),
                    "ExpressionAttributeNames": names,
                }
            }
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table, []):
                    day = by_key[(item["pk"]["S"], item["sk"]["S"])]
                    found[day] = {a: bytes(item[a]["B"]) for a in names.values() if a in item}
                request = response.get("UnprocessedKeys") or {}
        return found

    def advance_progress(self, stream: str, at: datetime) -> None:
        """Move the stream's `complete_until` forward to `at` (never back)."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"pk": {"S": PROGRESS_PK}, "sk": {"S": stream}},
                UpdateExpression="SET #at = :at",
                ConditionExpression="attribute_not_exists(#at) OR #at < :at",
                ExpressionAttributeNames={"#at": "at"},
                ExpressionAttributeValues={":at": {"S": at.isoformat()}},
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise

    # ------------------------------------------------------------------------------------ values registry

    def registered_values(self, tenant_id: str, resource_type: str, month: str, dimension: str) -> set[str]:
        response = self.client.get_item(
            TableName=self.table,
            Key={"pk": {"S": day_pk(tenant_id, resource_type)}, "sk": {"S": registry_sk(month, dimension)}},
            ConsistentRead=True,
        )
        return set(response.get("Item", {}).get("v", {}).get("SS", []))

    def register_value(
        self, tenant_id: str, resource_type: str, month: str, dimension: str, *, value: str, cap: int
    ) -> bool:
        """Add `value` to the month's registry unless it already holds `cap` other values; False if full."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"pk": {"S": day_pk(tenant_id, resource_type)}, "sk": {"S": registry_sk(month, dimension)}},
                UpdateExpression="ADD v :v",
                ConditionExpression="attribute_not_exists(v) OR contains(v, :s) OR size(v) < :cap",
                ExpressionAttributeValues={":v": {"SS": [value]}, ":s": {"S": value}, ":cap": {"N": str(cap)}},
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    # ------------------------------------------------------------------------------------ reads

    def complete_until(self) -> datetime | None:
        """The oldest `at` of the streams' progress items (None before anything was aggregated)."""
        items = list(
            query_items(
                self.client,
                TableName=self.table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": PROGRESS_PK}},
            )
        )
        marks = [datetime.fromisoformat(i["at"]["S"]) for i in items if "at" in i]
        return min(marks) if marks else None

    def days_of(self, tenant_id: str, resource_type: str, first: str, last: str) -> dict[str, DayCells]:
        """day -> counters of a tenant's day items with first <= day <= last (one Query)."""
        out: dict[str, DayCells] = {}
        for item in query_sort_key_range(
            self.client, self.table, day_pk(tenant_id, resource_type), day_sk(first), day_sk(last)
        ):
            out[item["sk"]["S"][2:]] = decode_day(item)
        return out

    def tenants_of_day(self, resource_type: str, day: str) -> list[str]:
        """The tenants with usage of `resource_type` on `day` (the `top` index, keys only)."""
        return [
            item["top_sk"]["S"]
            for item in query_items(
                self.client,
                TableName=self.table,
                IndexName="top",
                KeyConditionExpression="top_pk = :g",
                ExpressionAttributeValues={":g": {"S": top_pk(resource_type, day)}},
            )
        ]

    def day_items(self, resource_type: str, day: str, tenants: Sequence[str]) -> dict[str, DayCells]:
        """tenant -> counters of one day's items of the given tenants (batch reads, in parallel)."""
        keys = [DayKey(t, resource_type, day).key() for t in dict.fromkeys(tenants)]
        out: dict[str, DayCells] = {}
        for part in self.parallel(
            self._read_days, [keys[s : s + BATCH_GET_MAX] for s in range(0, len(keys), BATCH_GET_MAX)]
        ):
            out.update(part)
        return out

    def _read_days(self, keys: list[dict[str, Any]]) -> dict[str, DayCells]:
        out: dict[str, DayCells] = {}
        request: dict[str, Any] = {self.table: {"Keys": keys}}
        while request:
            response = self.client.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(self.table, []):
                out[item["top_sk"]["S"]] = decode_day(item)
            request = response.get("UnprocessedKeys") or {}
        return out

    def bucket_rows(
        self, tenant_id: str, resource_type: str, granularity: Granularity, first: str, last: str
    ) -> dict[str, Decimal]:
        """label -> total for a tenant's hour or day buckets with first <= label <= last (labels as
        `models.bucket_label` writes them); buckets without usage are left out."""
        days = self.days_of(tenant_id, resource_type, first[:10], last[:10])
        out: dict[str, Decimal] = {}
        for day, cells in days.items():
            if granularity is Granularity.DAY:
                if first <= day <= last:
                    out[day] = cells.total
                continue
            for hour, total in cells.hours.items():
                label = f"{day}T{hour:02d}"
                if first <= label <= last:
                    out[label] = total
        return out

    def bucket_totals(self, resource_type: str, granularity: Granularity, label: str) -> dict[str, Decimal]:
        """tenant -> total of one day (`granularity` DAY, label yyyy-mm-dd) for every tenant with usage."""
        if granularity is not Granularity.DAY:
            raise ValueError("bucket_totals reads whole days")
        cells = self.day_items(resource_type, label, self.tenants_of_day(resource_type, label))
        return {tenant: c.total for tenant, c in cells.items()}
