"""Re-derives the read model's day items of a range of days from the raw records (`billing-admin usage
rebuild`): to move an existing deployment onto this read model, or after raw records were corrected.

Exact beside live traffic. For a round of tenant x resource pairs:
1. read each pair's day items in the range (strongly consistent), keeping their watermarks W;
2. read the pair's raw records (strongly consistent) and sum them into the counters a day item holds;
3. put a fence item on every usage partition key, and wait for the aggregator's receipt of each: every
   record stored on that key before the fence, so every record read in 2, is folded in by then;
4. replace each day item's counters with the sums, keeping W, on the condition that its watermarks are
   still W. Watermarks only move forward when a record is folded in, so a day item that passes had
   nothing folded in since 1: every record read in 2 (all folded by 3) was folded before 1, and a
   record folded before 1 but not read in 2 was deleted from the raw table (a correction): the sums are
   the exact value for what the item's watermarks cover, and records stored later are folded in later
   exactly once (their sequence numbers are above W). An item whose watermarks moved is tried again in
   the next round; one still contended after `attempts` rounds is left as it is (still exact, only not
   re-derived) and reported.

Resumable and idempotent: the pairs of the range and the pairs done are kept in a state file; running
again with it skips what is done, and re-deriving a done pair writes the same counters.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from billing_platform.errors import ValidationError
from billing_platform.settings import Settings, get_settings
from billing_platform.usage.aggregator import UsageInsert
from billing_platform.usage.layout import DayKey, day_of
from billing_platform.usage.repository import (
    RAW_PARTITIONS,
    AggregateRepository,
    UsageRecordRepository,
    pair_partitions,
)

SCAN_SEGMENTS = 4
ROUND_PAIRS = 200
FENCE_WAIT_SECONDS = 300.0
_WATERMARK = re.compile(r"^w[0-9a-f]{6}_\d\d$")

Pair = tuple[str, str]  # tenant, resource type


@dataclass
class RebuildState:
    """What a run has done so far (the state file): the range, the pairs in it, and the pairs done."""

    first: str
    last: str
    pairs: list[list[str]] = field(default_factory=list)
    done: list[list[str]] = field(default_factory=list)
    enumerated: bool = False

    @classmethod
    def load(cls, path: Path | None, first: str, last: str) -> RebuildState:
        if path is None or not path.exists():
            return cls(first, last)
        state = cls(**json.loads(path.read_text()))
        if (state.first, state.last) != (first, last):
            raise ValidationError(f"{path} is the state of a rebuild of {state.first}..{state.last}")
        return state

    def save(self, path: Path | None) -> None:
        if path is not None:
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(asdict(self)))
            temporary.replace(path)


@dataclass
class RebuildReport:
    first: str
    last: str
    pairs: int = 0
    items_written: int = 0
    items_contended: int = 0
    rounds: int = 0
    left: list[str] = field(default_factory=list)  # day items still contended after every attempt


def day_sums(records: list[dict[str, Any]], first: str, last: str) -> dict[str, dict[str, Decimal]]:
    """day -> counter -> sum of the raw records (as stored) whose day is in [first, last]."""
    out: dict[str, dict[str, Decimal]] = {}
    for item in records:
        at = datetime.fromisoformat(item["ts"]["S"])
        day = day_of(at.astimezone(UTC))
        if not first <= day <= last:
            continue
        dims = tuple(sorted((k, v["S"]) for k, v in item.get("dims", {}).get("M", {}).items()))
        insert = UsageInsert(
            "0",
            "",
            item["tenant_id"]["S"],
            item["resource_type"]["S"],
            Decimal(item["quantity"]["N"]),
            at.astimezone(UTC),
            dims,
            item["entity"]["S"] if "entity" in item else None,
        )
        cells = out.setdefault(day, {})
        for cell in insert.cells():
            cells[cell] = cells.get(cell, Decimal(0)) + insert.quantity
    return out


class UsageRebuild:
    """Runs a rebuild (see the module docstring); `progress(done, total)` is called as pairs finish."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        raw: UsageRecordRepository | None = None,
        days: AggregateRepository | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings or get_settings()
        self._raw = raw or UsageRecordRepository(self._settings)
        self._days = days or AggregateRepository(self._settings)
        self._clock = clock
        self._sleep = sleep

    def run(
        self,
        first: str,
        last: str,
        *,
        state_path: Path | None = None,
        progress: Callable[[int, int], None] = lambda done, total: None,
        attempts: int = 5,
        max_pairs: int | None = None,
    ) -> RebuildReport:
        """Re-derive the day items of days [first, last] (yyyy-mm-dd, UTC). `max_pairs` stops after that
        many pairs (the state file resumes)."""
        self._check_range(first, last)
        state = RebuildState.load(state_path, first, last)
        if not state.enumerated:
            state.pairs = [list(p) for p in sorted(self._pairs(first, last))]
            state.enumerated = True
            state.save(state_path)
        report = RebuildReport(first, last, pairs=len(state.pairs))
        done = {tuple(p) for p in state.done}
        todo: list[Pair] = [(p[0], p[1]) for p in state.pairs if tuple(p) not in done]
        if max_pairs is not None:
            todo = todo[:max_pairs]
        for start in range(0, len(todo), ROUND_PAIRS):
            chunk = todo[start : start + ROUND_PAIRS]
            self._rebuild_pairs(chunk, first, last, attempts, report)
            state.done += [list(p) for p in chunk]
            state.save(state_path)
            progress(len(state.done), len(state.pairs))
        return report

    def _check_range(self, first: str, last: str) -> None:
        try:
            start = datetime.fromisoformat(first).replace(tzinfo=UTC)
            end = datetime.fromisoformat(last).replace(tzinfo=UTC)
        except ValueError:
            raise ValidationError("days are yyyy-mm-dd") from None
        if end < start:
            raise ValidationError("the last day is before the first")
        oldest = self._clock() - self._settings.usage_record_max_age + timedelta(days=1)
        if start < oldest.replace(hour=0, minute=0, second=0, microsecond=0):
            raise ValidationError(
                f"raw records are kept {self._settings.usage_record_ttl_days} days: the first day must be "
                f"{day_of(oldest)} or later (older days cannot be re-derived)"
            )

    def _pairs(self, first: str, last: str) -> set[Pair]:
        """Pairs with raw records in the range (a parallel scan of the raw table) or with day items in it
        (the `top` index per day and resource type: items whose records were all deleted)."""
        pairs: set[Pair] = set()
        for segment in range(SCAN_SEGMENTS):
            key = None
            while True:
                found, key = self._raw.scan_pairs(segment, SCAN_SEGMENTS, key)
                pairs |= {(t, r) for t, r, day in found if first <= day <= last}
                if not key:
                    break
        day = datetime.fromisoformat(first).replace(tzinfo=UTC)
        while day_of(day) <= last:
            for resource in self._settings.catalog.resource_types:
                pairs |= {(t, resource) for t in self._days.tenants_of_day(resource, day_of(day))}
            day += timedelta(days=1)
        return pairs

    def _rebuild_pairs(self, pairs: list[Pair], first: str, last: str, attempts: int, report: RebuildReport) -> None:
        tags = self._days.stream_tags()
        pending = list(pairs)
        for attempt in range(attempts):
            if not pending:
                return
            report.rounds += 1
            planned = []
            for tenant, resource in pending:
                stored = self._days.day_items_of(tenant, resource, first, last)
                sums = day_sums(self._raw.records_of(tenant, resource), first, last)
                planned.append(((tenant, resource), stored, sums))
            self._fence()
            contended: list[Pair] = []
            for (tenant, resource), stored, sums in planned:
                marks = {
                    watermark_attribute_of(tag, usage_pk)
                    for tag in tags
                    for usage_pk in pair_partitions(tenant, resource)
                }
                for day in sorted(set(stored) | set(sums)):
                    seen = stored.get(day)
                    names = marks | {a for a in (seen or {}) if _WATERMARK.match(a)}
                    if self._days.replace_day(DayKey(tenant, resource, day), sums.get(day, {}), seen, names):
                        report.items_written += 1
                    else:
                        report.items_contended += 1
                        if (tenant, resource) not in contended:
                            contended.append((tenant, resource))
                        if attempt == attempts - 1:
                            report.left.append(f"{tenant} {resource} {day}")
            pending = contended

    def _fence(self) -> None:
        """Fence every usage partition key and wait until the aggregator has passed all of them."""
        round_id = uuid.uuid4().hex[:16]
        self._raw.put_fences(round_id)
        deadline = time.monotonic() + FENCE_WAIT_SECONDS
        expected = {f"USAGE#{n:02d}" for n in range(RAW_PARTITIONS)}
        while self._days.fence_receipts(round_id) != expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the aggregator did not pass fence {round_id} in {FENCE_WAIT_SECONDS:.0f} s")
            self._sleep(0.5)


def watermark_attribute_of(tag: str, usage_pk: str) -> str:
    """The watermark attribute name for a stream tag (as `layout.watermark_attribute` names it from a label)."""
    return f"w{tag}_{usage_pk.rsplit('#', 1)[-1]}"
