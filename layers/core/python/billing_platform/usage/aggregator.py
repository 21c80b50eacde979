"""Folds newly inserted raw usage records from the usage table's stream into hour / day / month totals,
exactly once under Lambda's retries with any batch boundaries (DESIGN invariant 3).

Why the checkpoint is per usage partition key and not per shard: Lambda's stream event does not name
its shard. What it does guarantee is that every stream record of one item collection (one usage `pk`)
lives in one shard, in sequence-number order, processed by one invocation at a time
(ParallelizationFactor 1) — and a parent shard before its children. So "the last applied sequence number
of usage pk P" is a checkpoint with the same exactness as a shard's, and RAW_PARTITIONS bounds how many
there are in a batch.

A batch is applied in chunks of at most 100 transaction items (the TransactWriteItems limit). A chunk holds
the records of some usage pks (per pk, a run of consecutive records: see `plan_chunks`); its records'
totals are coalesced into one update per bucket row, and for each usage pk it touches the chunk carries
that pk's checkpoint, conditioned on being below the chunk's first sequence number of the pk. A chunk
therefore commits entirely or not at all, and can never commit twice.
The first attempt is optimistic (no reads); if a condition fails (a retried batch), the checkpoints are
read and the already-applied records skipped.

Failure reporting: records are not independent (they share rows, and per-pk order matters), so
Powertools' per-record BatchProcessor does not fit. On a failed chunk the handler reports the lowest
unapplied record as the batch item failure: Lambda resumes there; records after it that were committed
are skipped on the retry by their checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecordEventName
from botocore.exceptions import ClientError

from billing_platform.conditions import lost_race
from billing_platform.settings import Settings
from billing_platform.usage.models import Granularity, bucket_label
from billing_platform.usage.repository import TRANSACT_MAX, AggregateRepository, checkpoint_pk, pad_seq

logger = Logger(child=True)
MAX_REPLANS = 3


@dataclass(frozen=True)
class UsageInsert:
    """A newly inserted raw record, as the aggregator needs it."""

    sequence_number: str
    checkpoint_key: str
    tenant_id: str
    resource_type: str
    quantity: Decimal
    timestamp: datetime


@dataclass
class ParsedBatch:
    inserts: list[UsageInsert] = field(default_factory=list)
    ignored: int = 0  # MODIFY / REMOVE: rewrites and TTL expiry never change totals
    malformed: list[str] = field(default_factory=list)


@dataclass
class AggregationResult:
    applied: int = 0
    skipped_duplicates: int = 0
    ignored: int = 0
    malformed: int = 0
    transactions: int = 0
    failed_from: str | None = None  # first sequence number not applied

    def to_lambda_response(self) -> dict[str, Any]:
        failures = [{"itemIdentifier": self.failed_from}] if self.failed_from else []
        return {"batchItemFailures": failures}


def stream_label(event_source_arn: str | None) -> str:
    # arn:aws:dynamodb:<region>:<acct>:table/<name>/stream/<label>: table and label name the stream.
    if not event_source_arn or "/stream/" not in event_source_arn:
        return "unknown"
    table_part, label = event_source_arn.split(":table/", 1)[-1].split("/stream/", 1)
    return f"{table_part}/{label}"


def parse_stream_event(event: dict[str, Any]) -> ParsedBatch:
    """INSERTs become `UsageInsert`s in stream order; anything else is ignored. An INSERT whose image
    is not a usage record (it cannot become valid by retrying) is reported as malformed, not retried."""
    batch = ParsedBatch()
    for record in DynamoDBStreamEvent(event).records:
        change = record.dynamodb
        if change is None or change.sequence_number is None:
            continue
        if record.event_name is not DynamoDBRecordEventName.INSERT:
            batch.ignored += 1
            continue
        try:
            image = change.new_image
            batch.inserts.append(
                UsageInsert(
                    sequence_number=change.sequence_number,
                    checkpoint_key=checkpoint_pk(stream_label(record.event_source_arn), str(change.keys["pk"])),
                    tenant_id=str(image["tenant_id"]),
                    resource_type=str(image["resource_type"]),
                    quantity=Decimal(image["quantity"]),
                    timestamp=datetime.fromisoformat(str(image["ts"])),
                )
            )
        except (KeyError, ValueError, ArithmeticError, TypeError):
            batch.malformed.append(change.sequence_number)
    return batch


@dataclass
class _Chunk:
    inserts: list[UsageInsert] = field(default_factory=list)
    rows: dict[tuple[str, str, Granularity, str], list[Any]] = field(default_factory=dict)
    checkpoints: dict[str, tuple[str, str]] = field(default_factory=dict)  # pk -> (first, last)

    def size(self) -> int:
        return len(self.rows) + len(self.checkpoints)


def _row_keys(insert: UsageInsert) -> list[tuple[str, str, Granularity, str]]:
    return [(insert.tenant_id, insert.resource_type, g, bucket_label(g, insert.timestamp)) for g in Granularity]


def plan_chunks(inserts: Iterable[UsageInsert], limit: int = TRANSACT_MAX) -> list[_Chunk]:
    """Split a batch into chunks of at most `limit` transaction items, coalescing each chunk's records
    into one update per row.

    Records are grouped by usage partition key (each group keeps stream order); the groups, in key order,
    go whole into the first chunk with room (first fit). The records of one tenant x resource sit on
    neighbouring keys, so a chunk gathers them and shares their rows. A group too large for any chunk is
    cut into consecutive runs in successive new chunks. Either way the records of one partition key are
    applied in stream order, which the checkpoint condition needs."""
    groups: dict[str, list[UsageInsert]] = {}
    for insert in inserts:
        groups.setdefault(insert.checkpoint_key, []).append(insert)
    chunks: list[_Chunk] = []
    for key in sorted(groups):
        group = groups[key]
        target = next((c for c in chunks if c.size() + _items_needed(c, group) <= limit), None)
        if target is None and _items_needed(_Chunk(), group) <= limit:
            target = _Chunk()
            chunks.append(target)
        if target is not None:
            for insert in group:
                _add(target, insert)
            continue
        current = _Chunk()
        chunks.append(current)
        for insert in group:
            if current.inserts and current.size() + _items_needed(current, [insert]) > limit:
                current = _Chunk()
                chunks.append(current)
            _add(current, insert)
    return chunks


def _items_needed(chunk: _Chunk, inserts: list[UsageInsert]) -> int:
    rows = {k for insert in inserts for k in _row_keys(insert) if k not in chunk.rows}
    checkpoints = {i.checkpoint_key for i in inserts if i.checkpoint_key not in chunk.checkpoints}
    return len(rows) + len(checkpoints)


def _add(chunk: _Chunk, insert: UsageInsert) -> None:
    chunk.inserts.append(insert)
    for key in _row_keys(insert):
        row = chunk.rows.setdefault(key, [Decimal(0), 0])
        row[0] += insert.quantity
        row[1] += 1
    first, _ = chunk.checkpoints.get(insert.checkpoint_key, (insert.sequence_number, ""))
    chunk.checkpoints[insert.checkpoint_key] = (first, insert.sequence_number)


class UsageAggregationService:
    """Applies stream batches to the aggregates; see the module docstring for the exactness argument."""

    def __init__(self, settings: Settings | None = None, repository: AggregateRepository | None = None) -> None:
        self._repo = repository or AggregateRepository(settings)

    def apply_event(self, event: dict[str, Any]) -> AggregationResult:
        batch = parse_stream_event(event)
        if batch.malformed:
            logger.error("skipping malformed usage stream records", extra={"sequence_numbers": batch.malformed[:20]})
        result = self.apply(batch.inserts)
        result.ignored = batch.ignored
        result.malformed = len(batch.malformed)
        return result

    def apply(self, inserts: list[UsageInsert]) -> AggregationResult:
        result = AggregationResult()
        remaining = list(inserts)
        replans = 0
        while remaining:
            chunk = plan_chunks(remaining)[0]
            try:
                self._repo.transact(self._items(chunk))
            except ClientError as exc:
                result.transactions += 1
                if lost_race(exc) and replans < MAX_REPLANS:
                    replans += 1
                    before = len(remaining)
                    remaining = self._unapplied(remaining)
                    result.skipped_duplicates += before - len(remaining)
                    continue
                logger.warning("aggregate transaction failed", extra={"error": str(exc)})
                # Lambda resumes at the lowest reported record; committed records after it are skipped
                # on the retry by their checkpoints.
                result.failed_from = min(remaining, key=lambda i: pad_seq(i.sequence_number)).sequence_number
                return result
            result.transactions += 1
            result.applied += len(chunk.inserts)
            done = {id(i) for i in chunk.inserts}
            remaining = [i for i in remaining if id(i) not in done]
        return result

    def _items(self, chunk: _Chunk) -> list[dict[str, Any]]:
        items = [
            self._repo.row_update(tenant, resource, granularity, label, quantity, count)
            for (tenant, resource, granularity, label), (quantity, count) in chunk.rows.items()
        ]
        items += [self._repo.checkpoint_update(pk, first, last) for pk, (first, last) in chunk.checkpoints.items()]
        return items

    def _unapplied(self, inserts: list[UsageInsert]) -> list[UsageInsert]:
        """Drop records at or below their pk's committed checkpoint."""
        checkpoints = self._repo.get_checkpoints(i.checkpoint_key for i in inserts)
        return [i for i in inserts if pad_seq(i.sequence_number) > checkpoints.get(i.checkpoint_key, "")]
