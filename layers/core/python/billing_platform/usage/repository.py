"""DynamoDB access for usage: raw records (usage table) and aggregates + checkpoints (aggregates table).

The only usage code that speaks boto3. Key layout:

usage table (one item per record, written with BatchWriteItem, TTL `expires_at`)
    pk `USAGE#<nn>`  nn = (h(tenant, resource) + h(record id) mod RAW_SPREAD) mod RAW_PARTITIONS: the
                     records of one tenant x resource land on RAW_SPREAD neighbouring partition keys (so
                     a hot pair gets RAW_SPREAD x ~1,000 writes/s), and the aggregator, which groups a
                     batch by partition key, finds them together and coalesces them into few rows.
                     RAW_PARTITIONS also bounds the aggregator's checkpoints.
    sk `<tenant>#<record id>`
    The key holds no timestamp or quantity, so a redelivered record lands on the same item even if its
    payload changed: the rewrite is a MODIFY, which the aggregator never counts. (A record id reused
    with another resource type is another record.)

aggregates table
    pk `AGG#<tenant>#<resource>`  sk `H#2026-11-25T10` | `D#2026-11-25` | `M#2026-11`
        total (N), records (N), top_pk `TOP#<resource>#<H|D|M>#<bucket>`, top_sk = tenant (index `top`,
        keys only: set once, so adding to the total writes no index entry),
        `w<stream tag>_<nn>` (S, zero-padded): per usage partition key `USAGE#<nn>`, the last stream
        sequence number folded into this row (the row's own exactly-once watermark; at most RAW_SPREAD
        of them per row, since a tenant x resource writes to RAW_SPREAD usage partition keys).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from billing_platform import clients
from billing_platform.conditions import cancellation, condition_failed
from billing_platform.dynamodb import BillingTable, query_items, query_sort_key_range
from billing_platform.errors import UsageWriteIncomplete
from billing_platform.settings import Settings, get_settings
from billing_platform.usage.models import Granularity, UsageRecord

RAW_PARTITIONS = 64
RAW_SPREAD = 4
BATCH_WRITE_MAX = 25
TRANSACT_MAX = 100
BATCH_GET_MAX = 100
# DynamoDB stream sequence numbers have 21 to 40 digits: padded, they compare as strings.
SEQ_WIDTH = 40
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
    return item


def pad_seq(sequence_number: str) -> str:
    return sequence_number.zfill(SEQ_WIDTH)


def aggregate_pk(tenant_id: str, resource_type: str) -> str:
    return f"AGG#{tenant_id}#{resource_type}"


def top_pk(resource_type: str, granularity: Granularity, label: str) -> str:
    return f"TOP#{resource_type}#{granularity.value}#{label}"


def watermark_attribute(stream_label: str, usage_pk: str) -> str:
    """The row attribute holding the last applied sequence number of one usage partition key of one
    stream: `w<6 hex of the stream label>_<nn>` (a new stream starts new watermarks)."""
    tag = hashlib.sha256(stream_label.encode()).hexdigest()[:6]
    return f"w{tag}_{usage_pk.rsplit('#', 1)[-1]}"


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


@dataclass(frozen=True)
class RowKey:
    tenant_id: str
    resource_type: str
    granularity: Granularity
    label: str

    def key(self) -> dict[str, Any]:
        return {
            "pk": {"S": aggregate_pk(self.tenant_id, self.resource_type)},
            "sk": {"S": f"{self.granularity.value}#{self.label}"},
        }


@dataclass
class RowDelta:
    """What one write adds to one row, and for each usage partition key (watermark attribute) the
    first and last sequence numbers it covers: the write succeeds only if every such watermark is still
    below its first, and moves it to its last."""

    row: RowKey
    quantity: Decimal
    records: int
    watermarks: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass
class WriteOutcome:
    """Indexes into the deltas given to `write_rows`: refused by a watermark (some of it was applied
    before), to be sent again as they are (a transaction cancelled by a neighbour), or failed."""

    stale: list[int] = field(default_factory=list)
    again: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    requests: int = 0


class AggregateRepository(BillingTable):
    """Aggregate rows with their watermarks, and the reads behind trends and top consumers (the
    aggregates table)."""

    def __init__(self, settings: Settings | None = None, client: Any = None) -> None:
        super().__init__(settings, client)
        self._pool: ThreadPoolExecutor | None = None

    @property
    def table(self) -> str:
        return self._settings.aggregates_table_name

    def row_update(
        self,
        tenant_id: str,
        resource_type: str,
        granularity: Granularity,
        label: str,
        quantity: Decimal,
        count: int,
        *,
        watermarks: Mapping[str, tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        """One write (a transaction item; its "Update" is also an UpdateItem request): add `quantity` and
        `count` to a bucket row, create its index keys if new, and advance the given watermarks, only if
        each is still below the first sequence number this write covers for that partition key."""
        names = {"#total": "total", "#records": "records", "#tpk": "top_pk", "#tsk": "top_sk"}
        values: dict[str, Any] = {
            ":q": {"N": str(quantity)},
            ":n": {"N": str(count)},
            ":tpk": {"S": top_pk(resource_type, granularity, label)},
            ":tsk": {"S": tenant_id},
        }
        sets = ["#tpk = :tpk", "#tsk = :tsk"]
        conditions = []
        for i, (attribute, (first, last)) in enumerate(sorted((watermarks or {}).items())):
            names[f"#w{i}"] = attribute
            values[f":f{i}"] = {"S": pad_seq(first)}
            values[f":l{i}"] = {"S": pad_seq(last)}
            sets.append(f"#w{i} = :l{i}")
            conditions.append(f"(attribute_not_exists(#w{i}) OR #w{i} < :f{i})")
        update: dict[str, Any] = {
            "TableName": self.table,
            "Key": RowKey(tenant_id, resource_type, granularity, label).key(),
            "UpdateExpression": "ADD #total :q, #records :n SET " + ", ".join(sets),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if conditions:
            update["ConditionExpression"] = " AND ".join(conditions)
        return {"Update": update}

    def delta_update(self, delta: RowDelta) -> dict[str, Any]:
        r = delta.row
        return self.row_update(
            r.tenant_id,
            r.resource_type,
            r.granularity,
            r.label,
            delta.quantity,
            delta.records,
            watermarks=delta.watermarks,
        )

    def transact(self, items: list[dict[str, Any]]) -> None:
        self.client.transact_write_items(TransactItems=items)

    def write_rows(self, deltas: Sequence[RowDelta]) -> WriteOutcome:
        """Send the deltas, in parallel, the way settings say (`usage_aggregate_writes`). Each delta stands
        alone: a refused one never undoes another. Errors other than DynamoDB refusals propagate."""
        outcome = WriteOutcome()
        if not deltas:
            return outcome
        if self._settings.usage_aggregate_writes == "single":
            units = [[i] for i in range(len(deltas))]
            send = self._send_single
        else:
            units = [list(range(s, min(s + TRANSACT_MAX, len(deltas)))) for s in range(0, len(deltas), TRANSACT_MAX)]
            send = self._send_transaction
        for part in self._parallel(lambda unit: send(unit, deltas), units):
            outcome.stale += part.stale
            outcome.again += part.again
            outcome.failed += part.failed
            outcome.requests += part.requests
        return outcome

    def _parallel(self, fn: Callable[[_In], _Out], items: list[_In]) -> list[_Out]:
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

    def _send_single(self, unit: list[int], deltas: Sequence[RowDelta]) -> WriteOutcome:
        (index,) = unit
        try:
            self.client.update_item(**self.delta_update(deltas[index])["Update"])
        except ClientError as exc:
            if condition_failed(exc):
                return WriteOutcome(stale=[index], requests=1)
            return WriteOutcome(failed=[index], requests=1)
        return WriteOutcome(requests=1)

    def _send_transaction(self, unit: list[int], deltas: Sequence[RowDelta]) -> WriteOutcome:
        try:
            self.transact([self.delta_update(deltas[i]) for i in unit])
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

    def get_watermarks(self, rows: Iterable[RowKey], attributes: Iterable[str]) -> dict[RowKey, dict[str, str]]:
        """For each row, its watermark attributes among `attributes` (strongly consistent reads)."""
        wanted = list(dict.fromkeys(rows))
        names = {f"#w{i}": a for i, a in enumerate(sorted(set(attributes)))}
        by_key = {(r.key()["pk"]["S"], r.key()["sk"]["S"]): r for r in wanted}
        found: dict[RowKey, dict[str, str]] = {}
        for start in range(0, len(wanted), BATCH_GET_MAX):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [r.key() for r in wanted[start : start + BATCH_GET_MAX]],
                    "ConsistentRead": True,
                    "ProjectionExpression": ", ".join(["pk", "sk", *names]),
                    "ExpressionAttributeNames": names,
                }
            }
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table, []):
                    row = by_key[(item["pk"]["S"], item["sk"]["S"])]
                    found[row] = {a: item[a]["S"] for a in names.values() if a in item}
                request = response.get("UnprocessedKeys") or {}
        return found

    def bucket_rows(
        self, tenant_id: str, resource_type: str, granularity: Granularity, first: str, last: str
    ) -> dict[str, Decimal]:
        """label -> total for a tenant's buckets of one granularity with first <= label <= last."""
        out: dict[str, Decimal] = {}
        rows = query_sort_key_range(
            self.client,
            self.table,
            aggregate_pk(tenant_id, resource_type),
            f"{granularity.value}#{first}",
            f"{granularity.value}#{last}",
            ProjectionExpression="sk, #total",
            ExpressionAttributeNames={"#total": "total"},
        )
        for item in rows:
            out[item["sk"]["S"].split("#", 1)[1]] = Decimal(item["total"]["N"])
        return out

    def bucket_totals(self, resource_type: str, granularity: Granularity, label: str) -> dict[str, Decimal]:
        """tenant -> total for every tenant with usage of `resource_type` in one bucket: the `top` index
        lists the rows (keys only), their totals are read from the rows (eventually consistent, like the
        index itself)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "top",
            "KeyConditionExpression": "top_pk = :g",
            "ExpressionAttributeValues": {":g": {"S": top_pk(resource_type, granularity, label)}},
        }
        keys = [{"pk": item["pk"], "sk": item["sk"]} for item in query_items(self.client, **kwargs)]
        out: dict[str, Decimal] = {}
        for part in self._parallel(
            self._totals_of, [keys[s : s + BATCH_GET_MAX] for s in range(0, len(keys), BATCH_GET_MAX)]
        ):
            out.update(part)
        return out

    def _totals_of(self, keys: list[dict[str, Any]]) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        request: dict[str, Any] = {
            self.table: {
                "Keys": keys,
                "ProjectionExpression": "pk, #total",
                "ExpressionAttributeNames": {"#total": "total"},
            }
        }
        while request:
            response = self.client.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(self.table, []):
                tenant = item["pk"]["S"].split("#")[1]
                out[tenant] = Decimal(item["total"]["N"])
            request = response.get("UnprocessedKeys") or {}
        return out
