"""Raw usage records in the usage table (one item per record; key layout in the package docstring), and
what the rebuild reads and writes there (pairs, a pair's records, fences)."""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from billing_platform import clients
from billing_platform.dynamodb import query_items
from billing_platform.errors import UsageWriteIncomplete
from billing_platform.settings import Settings, get_settings
from billing_platform.usage.models import UsageRecord

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

    # -- what the rebuild reads and writes in the usage table

    def scan_pairs(
        self, segment: int, segments: int, start_key: dict[str, Any] | None
    ) -> tuple[set[tuple[str, str, str]], Any]:
        """One page of a parallel scan: (tenant, resource, day) of each raw record, and the key to go on
        from (None at the segment's end). Fences are skipped."""
        kwargs: dict[str, Any] = {
            "TableName": self._settings.usage_table_name,
            "Segment": segment,
            "TotalSegments": segments,
            "ProjectionExpression": "tenant_id, resource_type, ts",
            "ConsistentRead": True,
        }
        if start_key:
            kwargs["ExclusiveStartKey"] = start_key
        page = self.client.scan(**kwargs)
        found = {
            (i["tenant_id"]["S"], i["resource_type"]["S"], i["ts"]["S"][:10])
            for i in page.get("Items", [])
            if "tenant_id" in i
        }
        return found, page.get("LastEvaluatedKey")

    def records_of(self, tenant_id: str, resource_type: str) -> list[dict[str, Any]]:
        """Every stored raw record of a tenant x resource (its RAW_SPREAD partition keys, consistent)."""
        out: list[dict[str, Any]] = []
        for usage_pk in pair_partitions(tenant_id, resource_type):
            out += [
                item
                for item in query_items(
                    self.client,
                    TableName=self._settings.usage_table_name,
                    KeyConditionExpression="pk = :pk AND begins_with(sk, :t)",
                    ExpressionAttributeValues={":pk": {"S": usage_pk}, ":t": {"S": f"{tenant_id}#"}},
                    ConsistentRead=True,
                )
                if item.get("resource_type", {}).get("S") == resource_type
            ]
        return out

    def put_fences(self, round_id: str) -> None:
        """A fence item on every usage partition key: its stream record follows every record stored on
        that key before it (one shard, in order), so the aggregator passing it proves they are folded."""
        expires = str(int(time.time()) + 86_400)
        for bucket in range(RAW_PARTITIONS):
            self.client.put_item(
                TableName=self._settings.usage_table_name,
                Item={
                    "pk": {"S": f"USAGE#{bucket:02d}"},
                    "sk": {"S": f"~fence#{round_id}"},
                    "fence": {"S": round_id},
                    "expires_at": {"N": expires},
                },
            )


def pair_partitions(tenant_id: str, resource_type: str) -> list[str]:
    """The RAW_SPREAD usage partition keys a tenant x resource's records land on."""
    base = _hash32(f"{tenant_id}#{resource_type}")
    return [f"USAGE#{(base + spread) % RAW_PARTITIONS:02d}" for spread in range(RAW_SPREAD)]
