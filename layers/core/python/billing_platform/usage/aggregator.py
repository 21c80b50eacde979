"""Folds newly inserted raw usage records from the usage table's stream into the read model's day items
(layout: `usage.layout`), exactly once under Lambda's retries with any batch boundaries (DESIGN invariant
3), without transactions for exactness.

Each day item carries its own watermarks: per usage partition key (`USAGE#<nn>`), the last stream
sequence number folded into that item. Lambda's stream event does not name its shard, but every stream
record of one item collection (one usage `pk`) lives in one shard, in sequence-number order, processed
by one invocation at a time (ParallelizationFactor 1), a parent shard before its children; so per usage
pk, records reach an item in stream order.

A batch becomes one write per touched day item (its records pre-aggregated: the day total, the hour
totals and the hour totals per dimension value and per entity): add the sums, and for each usage pk it
covers move the item's watermark from below the pk's first record in this write to its last, on the
condition that the watermark is still below that first record. An item's applied records of one usage
pk are therefore always a prefix, in stream order, of that pk's records for the item: a write either
adds all of its records or none. A refused write (a retried batch, some of it applied before) reads the
item's watermarks, drops the records at or below them and is sent again. An item whose records touch
more counters than one update expression can hold is written in several consecutive writes, each a
prefix of the rest in stream order (same rule). A write also refused when a code it introduces to an
item is taken by another value there (`usage.layout`): the read of the item's watermarks then reads its
dictionary entries too, and that value is written in plain form in that item from then on (how a
counter is named never changes whether a record is applied). No checkpoint item is written; one small progress write
per batch moves `complete_until`, and a rebuild's fence records (`usage.rebuild`) get a receipt once
their batch is folded in.

Failure reporting: an item that could not be written is reported by its lowest unapplied record as the
batch item failure (the lowest over all such items): Lambda resumes there, every record before it is in
every one of its items, and what was applied after it is dropped on the retry by the items' watermarks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecordEventName

from billing_platform.settings import Settings
from billing_platform.usage.layout import (
    ENTITY_MARK,
    TOTAL,
    DayKey,
    day_of,
    encode_seq,
    entry_name,
    entry_value,
    group_cell,
    hour_cell,
    stream_tag,
    watermark_attribute,
)
from billing_platform.usage.repository import AggregateRepository, DayDelta

logger = logging.getLogger(__name__)
# Rounds of writes per batch: the first, re-sends of refused (stale) or cancelled items, and the later
# parts of items written in several consecutive writes.
MAX_ROUNDS = 40
# DynamoDB's limit on an update (and on a condition) expression is 4 KB; a write stops adding counters
# below this in either.
MAX_EXPRESSION_CHARS = 3_800
# Characters per clause: "#tag :tag, " per counter; "#Etag = :Etag, " and
# "(attribute_not_exists(#Etag) OR #Etag = :Etag) AND " per dictionary entry; "#wN = :lN, " and
# "(attribute_not_exists(#wN) OR #wN < :fN) AND " per watermark (tags of at most 3 characters).
_COUNTER_CHARS, _ENTRY_CHARS, _ENTRY_CONDITION_CHARS = 11, 17, 55
_WATERMARK_CHARS, _WATERMARK_CONDITION_CHARS = 13, 50


@dataclass(frozen=True)
class UsageInsert:
    """A newly inserted raw record, as the aggregator needs it."""

    sequence_number: str
    watermark: str  # the item attribute of this record's usage partition key (see repository)
    tenant_id: str
    resource_type: str
    quantity: Decimal
    timestamp: datetime
    dimensions: tuple[tuple[str, str], ...] = ()
    entity_id: str | None = None

    def cells(self) -> list[str]:
        """The counters this record adds its quantity to in its day item."""
        hour = self.timestamp.hour
        out = [TOTAL, hour_cell(hour)]
        out += [group_cell(name, hour, value) for name, value in self.dimensions]
        if self.entity_id is not None:
            out.append(group_cell(ENTITY_MARK, hour, self.entity_id))
        return out

    def labels(self) -> list[tuple[str, str]]:
        """(mark, value) of each group counter of `cells`: its dimension values and its entity."""
        out = list(self.dimensions)
        if self.entity_id is not None:
            out.append((ENTITY_MARK, self.entity_id))
        return out


@dataclass
class ParsedBatch:
    inserts: list[UsageInsert] = field(default_factory=list)
    ignored: int = 0  # MODIFY / REMOVE: rewrites and TTL expiry never change totals
    malformed: list[str] = field(default_factory=list)
    newest: datetime | None = None  # creation time of the batch's newest stream record
    stream: str = "unknown"
    fences: list[tuple[str, str]] = field(default_factory=list)  # (rebuild round, usage pk) passed


@dataclass
class AggregationResult:
    applied: int = 0
    skipped_duplicates: int = 0
    ignored: int = 0
    malformed: int = 0
    write_requests: int = 0
    rows_written: int = 0  # item writes that succeeded
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


def _dimensions(image: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    dims = image.get("dims") or {}
    return tuple(sorted((str(k), str(v)) for k, v in dims.items()))


def parse_stream_event(event: dict[str, Any]) -> ParsedBatch:
    """INSERTs become `UsageInsert`s in stream order; anything else is ignored. An INSERT whose image
    is not a usage record (it cannot become valid by retrying) is reported as malformed, not retried."""
    batch = ParsedBatch()
    for record in DynamoDBStreamEvent(event).records:
        change = record.dynamodb
        if change is None or change.sequence_number is None:
            continue
        label = stream_label(record.event_source_arn)
        batch.stream = stream_tag(label)
        epoch = change.approximate_creation_date_time
        created = None if epoch is None else datetime.fromtimestamp(epoch, UTC)
        if created is not None and (batch.newest is None or created > batch.newest):
            batch.newest = created
        if record.event_name is not DynamoDBRecordEventName.INSERT:
            batch.ignored += 1
            continue
        try:
            image = change.new_image
            if "fence" in image:  # a rebuild's marker (usage.rebuild), not usage
                batch.fences.append((str(image["fence"]), str(change.keys["pk"])))
                continue
            entity = image.get("entity")
            batch.inserts.append(
                UsageInsert(
                    sequence_number=change.sequence_number,
                    watermark=watermark_attribute(label, str(change.keys["pk"])),
                    tenant_id=str(image["tenant_id"]),
                    resource_type=str(image["resource_type"]),
                    quantity=Decimal(image["quantity"]),
                    timestamp=datetime.fromisoformat(str(image["ts"])),
                    dimensions=_dimensions(image),
                    entity_id=None if entity is None else str(entity),
                )
            )
        except (KeyError, ValueError, ArithmeticError, TypeError, AttributeError):
            batch.malformed.append(change.sequence_number)
    return batch


def plan_days(inserts: list[UsageInsert]) -> dict[DayKey, list[UsageInsert]]:
    """Every day item the batch touches with its records in stream order."""
    days: dict[DayKey, list[UsageInsert]] = {}
    for insert in sorted(inserts, key=lambda i: encode_seq(i.sequence_number)):
        day = DayKey(insert.tenant_id, insert.resource_type, day_of(insert.timestamp))
        days.setdefault(day, []).append(insert)
    return days


def next_delta(
    day: DayKey, inserts: list[UsageInsert], plain: frozenset[tuple[str, str]] = frozenset()
) -> tuple[DayDelta, int]:
    """The one write that adds the longest stream-order prefix of `inserts` whose counters, dictionary
    entries and watermarks fit one update and one condition expression (at least one record), and how
    many records it covers. `plain`: the (mark, value)s this item holds in plain form."""
    delta = DayDelta(day, {}, plain=plain)
    entries: set[str] = set()
    chars = conditions = 0
    taken = 0
    for insert in inserts:
        new = [c for c in dict.fromkeys(insert.cells()) if c not in delta.adds]
        labels = {entry_name(m, v) for m, v in insert.labels() if (m, v) not in plain} - entries
        fresh = insert.watermark not in delta.watermarks
        extra = _COUNTER_CHARS * len(new) + _ENTRY_CHARS * len(labels) + (_WATERMARK_CHARS if fresh else 0)
        extra_condition = _ENTRY_CONDITION_CHARS * len(labels) + (_WATERMARK_CONDITION_CHARS if fresh else 0)
        if taken and (chars + extra > MAX_EXPRESSION_CHARS or conditions + extra_condition > MAX_EXPRESSION_CHARS):
            break
        chars += extra
        conditions += extra_condition
        entries |= labels
        taken += 1
        for cell in insert.cells():
            delta.adds[cell] = delta.adds.get(cell, Decimal(0)) + insert.quantity
        first, _ = delta.watermarks.get(insert.watermark, (insert.sequence_number, ""))
        delta.watermarks[insert.watermark] = (first, insert.sequence_number)
    return delta, taken


class UsageAggregationService:
    """Applies stream batches to the read model; see the module docstring for the exactness argument."""

    def __init__(self, settings: Settings | None = None, repository: AggregateRepository | None = None) -> None:
        self._repo = repository or AggregateRepository(settings)

    def apply_event(self, event: dict[str, Any]) -> AggregationResult:
        batch = parse_stream_event(event)
        if batch.malformed:
            logger.error("skipping malformed usage stream records", extra={"sequence_numbers": batch.malformed[:20]})
        result = self.apply(batch.inserts)
        result.ignored = batch.ignored
        result.malformed = len(batch.malformed)
        if result.failed_from is None and batch.newest is not None:
            # Everything before a fence on its partition key is folded in now (stream order per key).
            self._repo.put_fence_receipts(batch.fences)
            self._repo.advance_progress(batch.stream, batch.newest)
            result.write_requests += 1 + len(batch.fences)
        return result

    def apply(self, inserts: list[UsageInsert]) -> AggregationResult:
        result = AggregationResult()
        pending = plan_days(inserts)
        plain: dict[DayKey, frozenset[tuple[str, str]]] = {}
        failed: dict[DayKey, list[UsageInsert]] = {}
        for _ in range(MAX_ROUNDS):
            if not pending:
                break
            days = list(pending)
            planned = [next_delta(day, pending[day], plain.get(day, frozenset())) for day in days]
            outcome = self._repo.write_days([delta for delta, _ in planned])
            result.write_requests += outcome.requests
            stale = {days[i] for i in outcome.stale}
            again = {days[i] for i in outcome.again}
            for i in outcome.failed:
                failed[days[i]] = pending.pop(days[i])
            for day, (_, taken) in zip(days, planned, strict=True):
                if day in stale or day in again or day in failed:
                    continue
                result.rows_written += 1
                result.applied += taken
                rest = pending[day][taken:]
                if rest:
                    pending[day] = rest
                else:
                    del pending[day]
            if stale:
                # Some of these items' records were applied by an earlier attempt (keep only the rest), or
                # a code they introduce is another value's there (write that value in plain form).
                labels = {(m, v) for d in stale for i in pending[d] for m, v in i.labels()}
                marks = self._repo.get_watermarks(
                    stale,
                    {i.watermark for d in stale for i in pending[d]},
                    {entry_name(m, v) for m, v in labels},
                )
                for day in stale:
                    seen = marks.get(day, {})
                    taken_codes = {
                        (m, v)
                        for i in pending[day]
                        for m, v in i.labels()
                        if seen.get(entry_name(m, v), entry_value(m, v).encode()) != entry_value(m, v).encode()
                    }
                    if taken_codes:
                        plain[day] = plain.get(day, frozenset()) | taken_codes
                    rest = [i for i in pending[day] if encode_seq(i.sequence_number) > seen.get(i.watermark, b"")]
                    result.skipped_duplicates += len(pending[day]) - len(rest)
                    if rest:
                        pending[day] = rest
                    else:
                        del pending[day]
        failed.update(pending)
        if failed:
            first = min((i for rows in failed.values() for i in rows), key=lambda i: encode_seq(i.sequence_number))
            logger.warning(
                "usage day items not written", extra={"items": len(failed), "resume_at": first.sequence_number}
            )
            result.failed_from = first.sequence_number
        return result
