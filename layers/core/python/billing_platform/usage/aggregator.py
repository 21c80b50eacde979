"""Folds newly inserted raw usage records from the usage table's stream into hour / day / month totals,
exactly once under Lambda's retries with any batch boundaries (DESIGN invariant 3), without transactions
for exactness.

Each aggregate row carries its own watermarks: per usage partition key (`USAGE#<nn>`), the last stream
sequence number folded into that row. Lambda's stream event does not name its shard, but every stream
record of one item collection (one usage `pk`) lives in one shard, in sequence-number order, processed
by one invocation at a time (ParallelizationFactor 1), a parent shard before its children; so per usage
pk, records reach a row in stream order.

A batch becomes one write per touched row (its records coalesced): add the sum, and for each usage pk
it covers move the row's watermark from below the pk's first record in this write to its last, on the
condition that the watermark is still below that first record. A row's applied records of one usage pk
are therefore always a prefix, in stream order, of that pk's records for the row: a write either adds
all of its records or none. A refused write (a retried batch, some of it applied before) reads the
row's watermarks, drops the records at or below them and is sent again. The rows are independent: one
write per row costs 1 WRU as an UpdateItem, 2 inside a transaction (`usage_aggregate_writes`), and no
checkpoint item is written at all.

Failure reporting: a row that could not be written is reported by its lowest unapplied record as the
batch item failure (the lowest over all such rows): Lambda resumes there, every record before it is in
every one of its rows, and what was applied after it is dropped on the retry by the rows' watermarks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecordEventName

from billing_platform.settings import Settings
from billing_platform.usage.models import Granularity, bucket_label
from billing_platform.usage.repository import AggregateRepository, RowDelta, RowKey, pad_seq, watermark_attribute

logger = logging.getLogger(__name__)
# Rounds of writes per batch: the first, then re-sends of refused (stale) or cancelled rows.
MAX_ROUNDS = 5


@dataclass(frozen=True)
class UsageInsert:
    """A newly inserted raw record, as the aggregator needs it."""

    sequence_number: str
    watermark: str  # the row attribute of this record's usage partition key (see repository)
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
    write_requests: int = 0
    rows_written: int = 0
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
                    watermark=watermark_attribute(stream_label(record.event_source_arn), str(change.keys["pk"])),
                    tenant_id=str(image["tenant_id"]),
                    resource_type=str(image["resource_type"]),
                    quantity=Decimal(image["quantity"]),
                    timestamp=datetime.fromisoformat(str(image["ts"])),
                )
            )
        except (KeyError, ValueError, ArithmeticError, TypeError):
            batch.malformed.append(change.sequence_number)
    return batch


def plan_rows(inserts: list[UsageInsert]) -> dict[RowKey, list[UsageInsert]]:
    """Every row the batch touches (hour, day and month of each record) with its records in stream order."""
    rows: dict[RowKey, list[UsageInsert]] = {}
    for insert in sorted(inserts, key=lambda i: pad_seq(i.sequence_number)):
        for granularity in Granularity:
            row = RowKey(
                insert.tenant_id, insert.resource_type, granularity, bucket_label(granularity, insert.timestamp)
            )
            rows.setdefault(row, []).append(insert)
    return rows


def row_delta(row: RowKey, inserts: list[UsageInsert]) -> RowDelta:
    """The one write that adds `inserts` (stream order) to `row`."""
    delta = RowDelta(row, sum((i.quantity for i in inserts), Decimal(0)), len(inserts))
    for insert in inserts:
        first, _ = delta.watermarks.get(insert.watermark, (insert.sequence_number, ""))
        delta.watermarks[insert.watermark] = (first, insert.sequence_number)
    return delta


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
        pending = plan_rows(inserts)
        failed: dict[RowKey, list[UsageInsert]] = {}
        for _ in range(MAX_ROUNDS):
            if not pending:
                break
            rows = list(pending)
            outcome = self._repo.write_rows([row_delta(row, pending[row]) for row in rows])
            result.write_requests += outcome.requests
            stale = [rows[i] for i in outcome.stale]
            retry = {rows[i]: pending[rows[i]] for i in outcome.again}
            failed.update({rows[i]: pending[rows[i]] for i in outcome.failed})
            done = set(rows) - set(stale) - set(retry) - set(failed)
            result.rows_written += len(done)
            result.applied += sum(len(pending[r]) for r in done if r.granularity is Granularity.HOUR)
            if stale:
                # Some of these rows' records were applied by an earlier attempt: keep only the rest.
                marks = self._repo.get_watermarks(stale, {i.watermark for r in stale for i in pending[r]})
                for row in stale:
                    seen = marks.get(row, {})
                    rest = [i for i in pending[row] if pad_seq(i.sequence_number) > seen.get(i.watermark, "")]
                    if row.granularity is Granularity.HOUR:
                        result.skipped_duplicates += len(pending[row]) - len(rest)
                    if rest:
                        retry[row] = rest
            pending = retry
        failed.update(pending)
        if failed:
            first = min((i for rows in failed.values() for i in rows), key=lambda i: pad_seq(i.sequence_number))
            logger.warning(
                "aggregate rows not written", extra={"rows": len(failed), "resume_at": first.sequence_number}
            )
            result.failed_from = first.sequence_number
        return result
