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
        total (N), records (N), gsi1pk `TOP#<resource>#<H|D|M>#<bucket>`, gsi1sk (N) = total
    pk `CKPT#<stream label>#<usage pk>`  sk `CKPT`: seq (S, zero-padded) = the last stream sequence
        number of that usage partition key folded into the totals.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

from billing_platform import clients
from billing_platform.dynamodb import BillingTable, query_items
from billing_platform.errors import BillingError
from billing_platform.settings import Settings, get_settings
from billing_platform.usage.models import Granularity, UsageRecord

RAW_PARTITIONS = 64
RAW_SPREAD = 4
BATCH_WRITE_MAX = 25
TRANSACT_MAX = 100
BATCH_GET_MAX = 100
SEQ_WIDTH = 64
CHECKPOINT_SK = "CKPT"


class UsageWriteIncomplete(BillingError):
    """Some records could not be written after retries; the message must be redelivered."""

    code = "usage_write_incomplete"
    http_status = 503


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


def checkpoint_pk(stream_label: str, usage_pk: str) -> str:
    return f"CKPT#{stream_label}#{usage_pk}"


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


class AggregateRepository(BillingTable):
    """Aggregate rows, checkpoints and the reads behind trends and top consumers (the aggregates table)."""

    @property
    def table(self) -> str:
        return self._settings.aggregates_table_name

    def row_update(
        self, tenant_id: str, resource_type: str, granularity: Granularity, label: str, quantity: Decimal, count: int
    ) -> dict[str, Any]:
        """One transaction item: add `quantity` and `count` to a bucket row, keeping gsi1sk = total
        (every reference in an update expression reads the item as it was before the update)."""
        return {
            "Update": {
                "TableName": self.table,
                "Key": {
                    "pk": {"S": aggregate_pk(tenant_id, resource_type)},
                    "sk": {"S": f"{granularity.value}#{label}"},
                },
                "UpdateExpression": (
                    "SET #total = if_not_exists(#total, :zero) + :q, #gsk = if_not_exists(#total, :zero) + :q, "
                    "#records = if_not_exists(#records, :zero) + :n, #gpk = :gpk, #tenant = :tenant, "
                    "#resource = :resource, #bucket = :bucket"
                ),
                "ExpressionAttributeNames": {
                    "#total": "total",
                    "#gsk": "gsi1sk",
                    "#records": "records",
                    "#gpk": "gsi1pk",
                    "#tenant": "tenant_id",
                    "#resource": "resource_type",
                    "#bucket": "bucket",
                },
                "ExpressionAttributeValues": {
                    ":zero": {"N": "0"},
                    ":q": {"N": str(quantity)},
                    ":n": {"N": str(count)},
                    ":gpk": {"S": top_pk(resource_type, granularity, label)},
                    ":tenant": {"S": tenant_id},
                    ":resource": {"S": resource_type},
                    ":bucket": {"S": label},
                },
            }
        }

    def checkpoint_update(self, ckpt_pk: str, first_seq: str, last_seq: str) -> dict[str, Any]:
        """Advance a checkpoint to `last_seq`, only if it is still below `first_seq`: the transaction
        fails, changing nothing, if any record of this chunk was already applied."""
        return {
            "Update": {
                "TableName": self.table,
                "Key": {"pk": {"S": ckpt_pk}, "sk": {"S": CHECKPOINT_SK}},
                "UpdateExpression": "SET #seq = :last",
                "ConditionExpression": "attribute_not_exists(#seq) OR #seq < :first",
                "ExpressionAttributeNames": {"#seq": "seq"},
                "ExpressionAttributeValues": {":last": {"S": pad_seq(last_seq)}, ":first": {"S": pad_seq(first_seq)}},
            }
        }

    def transact(self, items: list[dict[str, Any]]) -> None:
        self.client.transact_write_items(TransactItems=items)

    def get_checkpoints(self, ckpt_pks: Iterable[str]) -> dict[str, str]:
        """Checkpoint pk -> padded sequence number (strongly consistent reads)."""
        wanted = sorted(set(ckpt_pks))
        found: dict[str, str] = {}
        for start in range(0, len(wanted), BATCH_GET_MAX):
            keys: list[dict[str, Any]] = [
                {"pk": {"S": pk}, "sk": {"S": CHECKPOINT_SK}} for pk in wanted[start : start + BATCH_GET_MAX]
            ]
            request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table, []):
                    found[item["pk"]["S"]] = item["seq"]["S"]
                request = response.get("UnprocessedKeys") or {}
        return found

    def bucket_rows(
        self, tenant_id: str, resource_type: str, granularity: Granularity, first: str, last: str
    ) -> dict[str, Decimal]:
        """label -> total for a tenant's buckets of one granularity with first <= label <= last."""
        out: dict[str, Decimal] = {}
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :a AND :b",
            "ExpressionAttributeValues": {
                ":pk": {"S": aggregate_pk(tenant_id, resource_type)},
                ":a": {"S": f"{granularity.value}#{first}"},
                ":b": {"S": f"{granularity.value}#{last}"},
            },
            "ProjectionExpression": "sk, #total",
            "ExpressionAttributeNames": {"#total": "total"},
        }
        for item in query_items(self.client, **kwargs):
            out[item["sk"]["S"].split("#", 1)[1]] = Decimal(item["total"]["N"])
        return out

    def bucket_totals(self, resource_type: str, granularity: Granularity, label: str) -> dict[str, Decimal]:
        """tenant -> total for every tenant with usage of `resource_type` in one bucket (gsi1)."""
        out: dict[str, Decimal] = {}
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :g",
            "ExpressionAttributeValues": {":g": {"S": top_pk(resource_type, granularity, label)}},
            "ProjectionExpression": "tenant_id, #total",
            "ExpressionAttributeNames": {"#total": "total"},
            "ScanIndexForward": False,
        }
        for item in query_items(self.client, **kwargs):
            out[item["tenant_id"]["S"]] = Decimal(item["total"]["N"])
        return out
