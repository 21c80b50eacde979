"""Lambda's event-source mappings and schedule, on one machine, with the settings of `resources`.

- `SqsPoller`: long-polls the queue, gathers up to `batch_size` messages or until the batching window
  closes, invokes, then deletes only the successes (ReportBatchItemFailures). Failed messages stay
  invisible until the visibility timeout, then come back; the DLQ redrive after `maxReceiveCount` is SQS's.
  A handler error deletes nothing.
- `StreamPoller`: reads every shard of the table's stream in order (parents before children), from
  TRIM_HORIZON, in batches of `batch_size` gathered within the batching window. A reported item failure
  retries from the lowest failed sequence number; a function error bisects the batch (splits do not
  count as retries); after `retry_attempts` the records are skipped (Lambda would send them to the
  on-failure destination) and the shard moves on.
- `Scheduler`: invokes a function with an EventBridge scheduled event every N seconds.

Placeholder handlers (NotImplementedError) only log: the pollers keep going.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from local_stack.lambda_events import scheduled_event, sqs_record_from_message, stream_record_from_api

log = logging.getLogger("local_stack.pollers")

Invoke = Callable[[str, dict[str, Any]], Any]


class _Worker:
    """A named daemon thread with a stop event."""

    name = "worker"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> _Worker:
        self._thread = threading.Thread(target=self._run_guarded, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _run_guarded(self) -> None:
        while not self._stop.is_set():
            try:
                self.run()
                return
            except Exception:
                log.exception("%s crashed; restarting in 1 s", self.name)
                self._stop.wait(1.0)

    def run(self) -> None:
        raise NotImplementedError


def _invoke_logged(invoke: Invoke, function: str, event: dict[str, Any]) -> tuple[bool, Any]:
    """(ok, result). A function error is logged once, as Lambda's logs would show it."""
    try:
        return True, invoke(function, event)
    except NotImplementedError as exc:
        log.warning("%s is a placeholder (%s); batch not processed", function, exc)
    except Exception:
        log.exception("%s failed", function)
    return False, None


def _failed_ids(result: Any) -> list[str] | None:
    """Item identifiers of `batchItemFailures`; None if the response is not a valid partial response."""
    if result is None:
        return []
    if not isinstance(result, dict):
        return []
    failures = result.get("batchItemFailures")
    if failures is None:
        return []
    ids: list[str] = []
    for item in failures:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not ident:
            return None  # Lambda treats a malformed identifier as a failure of the whole batch
        ids.append(str(ident))
    return ids


# ---------------------------------------------------------------------------------------------- SQS


class SqsPoller(_Worker):
    def __init__(
        self,
        sqs: Any,
        *,
        queue_url: str,
        function: str,
        invoke: Invoke,
        batch_size: int,
        batching_window_seconds: float,
        report_batch_item_failures: bool = True,
        region: str = "us-east-1",
    ) -> None:
        super().__init__()
        self.name = f"sqs-poller-{function}"
        self._sqs = sqs
        self._url = queue_url
        self._function = function
        self._invoke = invoke
        self._batch_size = batch_size
        self._window = batching_window_seconds
        self._partial = report_batch_item_failures
        self._region = region
        self._arn: str | None = None
        self.invocations = 0

    def _queue_arn(self) -> str:
        if self._arn is None:
            attrs = self._sqs.get_queue_attributes(QueueUrl=self._url, AttributeNames=["QueueArn"])
            self._arn = str(attrs["Attributes"]["QueueArn"])
        return self._arn

    def _gather(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        window_ends: float | None = None
        while not self.stopping and len(messages) < self._batch_size:
            # Long polls of at most 1 s (SQS answers at once when a message is there), so stop() is seen
            # within a second. SQS waits whole seconds only: with less than one left in the window, sleep
            # the rest and take what came with a last zero-wait receive. (Truncating the remainder to 0
            # made that last second a busy loop of receives: ~1.2 CPU-s per batch in the stack process.)
            wait = 1
            if window_ends is not None:
                remaining = window_ends - time.monotonic()
                wait = min(1, int(remaining)) if remaining >= 1 else 0
                if wait == 0:
                    self._stop.wait(max(0.0, remaining))
            got = self._sqs.receive_message(
                QueueUrl=self._url,
                MaxNumberOfMessages=min(10, self._batch_size - len(messages)),
                WaitTimeSeconds=wait,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            messages.extend(got)
            if messages and window_ends is None:
                window_ends = time.monotonic() + self._window
            if window_ends is not None and time.monotonic() >= window_ends:
                break
            if not got and messages and self._window == 0:
                break
        return messages

    def poll_once(self) -> int:
        """Gather one batch, invoke, delete the successes. Returns the number of messages delivered."""
        messages = self._gather()
        if not messages:
            return 0
        arn = self._queue_arn()
        event = {"Records": [sqs_record_from_message(m, queue_arn=arn, region=self._region) for m in messages]}
        self.invocations += 1
        ok, result = _invoke_logged(self._invoke, self._function, event)
        if not ok:
            return len(messages)
        failed = _failed_ids(result) if self._partial else []
        if failed is None:
            log.error("%s returned malformed batchItemFailures; whole batch retried", self._function)
            return len(messages)
        done = [m for m in messages if m["MessageId"] not in set(failed)]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self._sqs.delete_message_batch(
                QueueUrl=self._url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        if failed:
            log.info(
                "%s reported %d failed messages; they return after the visibility timeout", self._function, len(failed)
            )
        return len(messages)

    def run(self) -> None:
        while not self.stopping:
            self.poll_once()


# ---------------------------------------------------------------------------------------------- Streams


@dataclass
class _Shard:
    shard_id: str
    parent_id: str | None
    iterator: str | None = None
    checkpoint: str | None = None  # last sequence number fully processed
    closed: bool = False  # no more records will come (iterator ran out)
    buffer: deque[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        self.buffer = deque()


class StreamPoller(_Worker):
    def __init__(
        self,
        dynamodb: Any,
        streams: Any,
        *,
        table_name: str,
        function: str,
        invoke: Invoke,
        batch_size: int,
        batching_window_seconds: float,
        starting_position: str = "TRIM_HORIZON",
        retry_attempts: int = 10,
        bisect_batch_on_error: bool = True,
        report_batch_item_failures: bool = True,
        poll_interval: float = 0.25,
        retry_backoff: float = 0.5,
        key_prefixes: tuple[str, ...] = (),
        on_batch: Callable[[str, float], None] | None = None,
    ) -> None:
        super().__init__()
        self.name = f"stream-poller-{function}"
        # Called with (function, creation time of the batch's last record): Lambda's IteratorAge.
        self._on_batch = on_batch
        self._prefixes = key_prefixes
        self._ddb = dynamodb
        self._streams = streams
        self._table = table_name
        self._function = function
        self._invoke = invoke
        self._batch_size = batch_size
        self._window = batching_window_seconds
        self._start = starting_position
        self._retries = retry_attempts
        self._bisect = bisect_batch_on_error
        self._partial = report_batch_item_failures
        self._interval = poll_interval
        self._backoff = retry_backoff
        self._stream_arn: str | None = None
        self._shards: dict[str, _Shard] = {}
        self.invocations = 0
        self.discarded: list[dict[str, Any]] = []

    # -- discovery

    def _arn(self) -> str:
        if self._stream_arn is None:
            table = self._ddb.describe_table(TableName=self._table)["Table"]
            self._stream_arn = str(table["LatestStreamArn"])
        return self._stream_arn

    def _discover(self) -> None:
        kwargs: dict[str, Any] = {"StreamArn": self._arn()}
        while True:
            desc = self._streams.describe_stream(**kwargs)["StreamDescription"]
            for shard in desc.get("Shards", []):
                sid = shard["ShardId"]
                if sid not in self._shards:
                    self._shards[sid] = _Shard(sid, shard.get("ParentShardId"))
            last = desc.get("LastEvaluatedShardId")
            if not last:
                return
            kwargs["ExclusiveStartShardId"] = last

    def _ready(self, shard: _Shard) -> bool:
        """Lambda finishes a parent shard before reading its children."""
        parent = self._shards.get(shard.parent_id or "")
        return parent is None or (parent.closed and not parent.buffer)

    def _iterator(self, shard: _Shard) -> str | None:
        if shard.iterator is None and not shard.closed:
            kwargs: dict[str, Any] = {"StreamArn": self._arn(), "ShardId": shard.shard_id}
            if shard.checkpoint:
                try:
                    shard.iterator = self._streams.get_shard_iterator(
                        **kwargs, ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=shard.checkpoint
                    )["ShardIterator"]
                    return shard.iterator
                except self._streams.exceptions.TrimmedDataAccessException:
                    # The records after the checkpoint aged out of the stream: Lambda goes on from the
                    # oldest record left, and so do we.
                    log.warning(
                        "%s: records after %s were trimmed from %s", self._function, shard.checkpoint, shard.shard_id
                    )
                    kwargs["ShardIteratorType"] = "TRIM_HORIZON"
            else:
                kwargs["ShardIteratorType"] = self._start
            shard.iterator = self._streams.get_shard_iterator(**kwargs)["ShardIterator"]
        return shard.iterator

    def _read(self, shard: _Shard) -> int:
        iterator = self._iterator(shard)
        if iterator is None:
            return 0
        try:
            page = self._streams.get_records(ShardIterator=iterator, Limit=1000)
        except self._streams.exceptions.ExpiredIteratorException:
            shard.iterator = None
            return 0
        except self._streams.exceptions.TrimmedDataAccessException:
            # DynamoDB Local numbers stream records with one counter for every write of the database, so
            # a TRIM_HORIZON iterator taken while the shard was empty can point below the shard's first
            # record once writes to other tables moved the counter on; it then fails forever. A new
            # iterator (after the checkpoint, or at the trim horizon) reads the same records from there.
            log.debug("%s: stale iterator on %s; taking a new one", self._function, shard.shard_id)
            shard.iterator = None
            return 0
        records = [r for r in page.get("Records", []) if self._wanted(r)]
        assert shard.buffer is not None
        shard.buffer.extend(records)
        shard.iterator = page.get("NextShardIterator")
        if shard.iterator is None:
            shard.closed = True
        return len(records)

    def _wanted(self, record: dict[str, Any]) -> bool:
        """Lambda's event filter (resources.StreamSourceSpec.key_prefixes): other records never reach the
        function, and count as processed."""
        if not self._prefixes:
            return True
        pk = record.get("dynamodb", {}).get("Keys", {}).get("pk", {}).get("S", "")
        return str(pk).startswith(self._prefixes)

    # -- delivery

    def _next_batch(self, shard: _Shard) -> list[dict[str, Any]]:
        assert shard.buffer is not None
        window_ends = time.monotonic() + self._window
        while len(shard.buffer) < self._batch_size and not shard.closed and not self.stopping:
            if shard.buffer and time.monotonic() >= window_ends:
                break
            if not shard.buffer:
                if self._read(shard) == 0:
                    return []
                window_ends = time.monotonic() + self._window
                continue
            if self._read(shard) == 0:
                self._stop.wait(min(self._interval, max(0.0, window_ends - time.monotonic())))
        return [shard.buffer.popleft() for _ in range(min(self._batch_size, len(shard.buffer)))]

    def _deliver(self, shard: _Shard, batch: list[dict[str, Any]]) -> None:
        """Lambda's checkpointing for one batch: returns once every record is processed or discarded."""
        arn = self._arn()
        created = batch[-1]["dynamodb"].get("ApproximateCreationDateTime") if batch else None
        if self._on_batch is not None and isinstance(created, datetime):
            self._on_batch(self._function, created.timestamp())
        pending: deque[list[dict[str, Any]]] = deque([batch])
        attempts = 0
        while pending and not self.stopping:
            part = pending.popleft()
            event = {"Records": [stream_record_from_api(r, stream_arn=arn) for r in part]}
            self.invocations += 1
            ok, result = _invoke_logged(self._invoke, self._function, event)
            if ok:
                failed = _failed_ids(result) if self._partial else []
                if failed == []:
                    shard.checkpoint = part[-1]["dynamodb"]["SequenceNumber"]
                    attempts = 0
                    continue
                if failed is not None:
                    # Retry from the lowest failed sequence number; everything before it is done.
                    seqs = [r["dynamodb"]["SequenceNumber"] for r in part]
                    known = [s for s in failed if s in seqs]
                    first = min((seqs.index(s) for s in known), default=0)
                    if first > 0:
                        shard.checkpoint = seqs[first - 1]
                    part = part[first:]
            # A function error (or failures reported): bisect if allowed, else retry the same records.
            if not ok and self._bisect and len(part) > 1:
                middle = len(part) // 2
                pending.appendleft(part[middle:])
                pending.appendleft(part[:middle])
                continue
            attempts += 1
            if attempts > self._retries:
                log.error(
                    "%s: %d records discarded after %d retries (on-failure destination)",
                    self._function,
                    len(part),
                    self._retries,
                )
                self.discarded.extend(part)
                shard.checkpoint = part[-1]["dynamodb"]["SequenceNumber"]
                attempts = 0
                continue
            pending.appendleft(part)
            self._stop.wait(min(self._backoff * 2 ** (attempts - 1), 10.0))

    def poll_once(self) -> int:
        """One pass over every ready shard. Returns the number of records delivered."""
        self._discover()
        delivered = 0
        for shard in list(self._shards.values()):
            if self.stopping or not self._ready(shard):
                continue
            if shard.closed and not shard.buffer:
                continue
            batch = self._next_batch(shard)
            if batch:
                self._deliver(shard, batch)
                delivered += len(batch)
        return delivered

    def run(self) -> None:
        while not self.stopping:
            if self.poll_once() == 0:
                self._stop.wait(self._interval)


# ---------------------------------------------------------------------------------------------- schedule


class Scheduler(_Worker):
    def __init__(self, *, function: str, invoke: Invoke, every_seconds: float, region: str = "us-east-1") -> None:
        super().__init__()
        self.name = f"scheduler-{function}"
        self._function = function
        self._invoke = invoke
        self._every = every_seconds
        self._region = region
        self.invocations = 0

    def fire(self) -> None:
        event = scheduled_event(
            rule_arn=f"arn:aws:events:{self._region}:000000000000:rule/billing-local-{self._function}",
            region=self._region,
            account="000000000000",
            event_id=str(uuid.uuid4()),
            time=datetime.now(UTC),
        )
        self.invocations += 1
        _invoke_logged(self._invoke, self._function, event)

    def run(self) -> None:
        while not self._stop.wait(self._every):
            self.fire()
