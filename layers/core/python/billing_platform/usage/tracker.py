"""`UsageTracker`: the client other services use to meter usage onto the usage queue.

Records are validated and given their record id when tracked (a bad record raises in the caller and
never reaches a batch), buffered, and sent many per SQS message and up to 10 messages per
SendMessageBatch. A record leaves the buffer only when SQS has accepted the message carrying it:
refused or unsendable records stay buffered (at the front, in order), are counted in `failed`, logged,
and retried by the next flush; `stop()` raises `UsageFlushError` if any are left, and
`drain_unsent()` hands them over for another way out. Downstream deduplicates by record id, so a
message that SQS accepted but reported as failed (and is therefore sent again) is not counted twice.

Two faces, the library's convention (see `billing_platform.enforcer`): `UsageTracker` is
async (``await tracker.track(...)``, ``async with UsageTracker(...)``), ``tracker.sync`` is the blocking
`SyncUsageTracker` for Lambda (``tracker.sync.track(...)``, ``@tracker.sync.flush_after``). Both share
one buffer and one background flush thread. Tracking only validates and buffers (no I/O), so the async
`track` runs on the loop; sending to SQS (a due flush, `flush`, `stop`) runs on the worker pool.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, ParamSpec, TypedDict, TypeVar

from billing_platform.dynamodb import utc_now
from billing_platform.errors import UsageBufferFull, UsageFlushError
from billing_platform.ids import TenantIdLike
from billing_platform.offload import run_blocking
from billing_platform.settings import Settings, get_settings
from billing_platform.usage.dimensions import DimensionGate
from billing_platform.usage.models import MetadataValue, UsageRecord, build_record, check_record
from billing_platform.usage.queue import SqsUsageQueue, UsageSender, send_records

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# A full SendMessageBatch holds 10 messages: flush on our own once that many are buffered.
MESSAGES_PER_AUTO_FLUSH = 10
DEFAULT_MAX_BUFFERED = 100_000


class TrackerStats(TypedDict):
    tracked: int
    flushed: int
    failed: int
    buffered: int
    batches: int
    messages: int


Quantity = Decimal | int | float | str


class SyncUsageTracker:
    """Thread-safe, batching usage client, blocking face. See the module docstring for the promise.

    `batch_size` is the most records one SQS message carries (fewer if 256 KiB is reached first); a
    flush starts by itself once ten messages' worth is buffered, every `flush_interval_seconds` while
    started (`start()` / context manager), and before a decorated Lambda handler returns (`flush_after`).
    """

    def __init__(
        self,
        usage_repository: str | UsageSender | None = None,
        batch_size: int | None = None,
        flush_interval_seconds: float | None = None,
        *,
        settings: Settings | None = None,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], None] = time.sleep,
        dimension_gate: DimensionGate | None = None,
    ) -> None:
        self._settings = settings or get_settings()
        self._gate = dimension_gate or DimensionGate(self._settings)  # builds its client on first use
        # Where records go (the document's "usage repository"): the usage queue's URL or a sender.
        target = usage_repository if usage_repository is not None else self._settings.usage_queue_url
        if target is None:
            raise ValueError("UsageTracker needs a queue URL (or USAGE_QUEUE_URL) or a sender")
        self._sender: UsageSender = SqsUsageQueue(target) if isinstance(target, str) else target
        self.batch_size = batch_size if batch_size is not None else self._settings.usage_tracker_batch_size
        if not 1 <= self.batch_size <= 10_000:
            raise ValueError("batch_size must be between 1 and 10000")
        interval = flush_interval_seconds
        self.flush_interval_seconds = interval if interval is not None else self._settings.usage_tracker_flush_interval
        if self.flush_interval_seconds <= 0:
            raise ValueError("flush_interval_seconds must be positive")
        self._max_buffered = max_buffered
        self._clock = clock
        self._sleep = sleep

        self._lock = threading.Lock()  # buffer and counters
        self._flush_lock = threading.Lock()  # one flush at a time keeps order and counters simple
        self._buffer: deque[str] = deque()
        self._stats: TrackerStats = {
            "tracked": 0,
            "flushed": 0,
            "failed": 0,
            "buffered": 0,
            "batches": 0,
            "messages": 0,
        }
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- tracking

    def track(
        self,
        tenant_id: TenantIdLike,
        resource_type: str,
        quantity: Quantity = 1,
        timestamp: datetime | None = None,
        record_id: str | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        *,
        dimensions: dict[str, str] | None = None,
        entity_id: str | None = None,
    ) -> str:
        """Validate, buffer and return the record id. `dimensions` are the resource type's declared
        dimensions (catalog), `entity_id` the user, team or key inside the tenant. Raises
        `UnprocessableError` / `ValidationError` for a bad record (`UndeclaredDimensionError`,
        `DimensionCapReachedError` among them; nothing is buffered), `UsageBufferFull` if the queue is
        unreachable for long."""
        record = self.prepare(
            tenant_id,
            resource_type,
            quantity,
            timestamp,
            record_id,
            metadata,
            dimensions=dimensions,
            entity_id=entity_id,
        )
        self.admit(record)
        record_id, due = self.enqueue(record)
        if due:
            self.flush()
        return record_id

    def track_execution(self, tenant_id: TenantIdLike, workflow_id: object) -> str:
        return self.track(tenant_id, *execution(workflow_id))

    def track_tokens(self, tenant_id: TenantIdLike, tokens: int, model: str) -> str:
        return self.track(tenant_id, *tokens_used(tokens, model), dimensions={"model": model})

    def track_api_call(self, tenant_id: TenantIdLike, endpoint: str, method: str) -> str:
        return self.track(tenant_id, *api_call(endpoint, method))

    def track_storage(self, tenant_id: TenantIdLike, size_mb: Quantity, storage_type: str) -> str:
        return self.track(tenant_id, *storage(size_mb, storage_type))

    def prepare(  # the record's fields, as `track` takes them
        self,
        tenant_id: TenantIdLike,
        resource_type: str,
        quantity: Quantity = 1,
        timestamp: datetime | None = None,
        record_id: str | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        *,
        dimensions: dict[str, str] | None = None,
        entity_id: str | None = None,
    ) -> UsageRecord:
        """Build and validate a record against the schema and the catalog (no I/O)."""
        record = build_record(
            tenant_id,
            resource_type,
            quantity,
            timestamp=timestamp,
            record_id=record_id,
            metadata=metadata,
            dimensions=dimensions,
            entity_id=entity_id,
        )
        check_record(record, self._settings.catalog, now=self._clock(), max_age=self._settings.usage_record_max_age)
        return record

    def needs_admission(self, record: UsageRecord) -> bool:
        """True when `admit` would do I/O (a dimension value or entity this process has not seen)."""
        return bool(record.dimensions or record.entity_id is not None) and self._gate.unknown(record)

    def admit(self, record: UsageRecord) -> None:
        """The cardinality caps (`DimensionCapReachedError`); I/O only for values not seen before."""
        if record.dimensions or record.entity_id is not None:
            self._gate.admit(record)

    def enqueue(self, record: UsageRecord) -> tuple[str, bool]:
        """Buffer an admitted record without sending: the record id, and whether the caller must flush
        now (a full batch while no background thread runs; with one, it is woken instead)."""
        encoded = record.wire_json()
        with self._lock:
            if len(self._buffer) >= self._max_buffered:
                raise UsageBufferFull(
                    f"{len(self._buffer)} usage records are waiting to be sent; refusing more",
                    details={"buffered": len(self._buffer)},
                )
            self._buffer.append(encoded)
            self._stats["tracked"] += 1
            full = len(self._buffer) >= self.batch_size * MESSAGES_PER_AUTO_FLUSH
        if full and self._thread is not None:
            self._wake.set()
            return record.record_id, False
        return record.record_id, full

    # -- flushing

    def flush(self) -> int:
        """Send everything buffered. Returns the records SQS accepted; the rest stay buffered."""
        with self._flush_lock:
            with self._lock:
                pending = list(self._buffer)
                self._buffer.clear()
            if not pending:
                return 0
            report = send_records(self._sender, pending, self.batch_size, sleep=self._sleep)
            sent, unsent = report.sent, report.unsent
            with self._lock:
                # Back at the front, ahead of anything tracked meanwhile: order is kept.
                self._buffer.extendleft(reversed(unsent))
                self._stats["flushed"] += sent
                self._stats["failed"] += len(unsent)
                self._stats["batches"] += report.requests
                self._stats["messages"] += report.messages
            if unsent:
                logger.error(
                    "usage records could not be sent; kept buffered for the next flush",
                    extra={"unsent": len(unsent), "sent": sent},
                )
            return sent

    def get_stats(self) -> TrackerStats:
        """Counters since creation: tracked, flushed (accepted by SQS), failed (record-sends that did
        not go through, each retried later), buffered (waiting now), batches (SendMessageBatch calls),
        messages (messages accepted)."""
        with self._lock:
            stats = TrackerStats(**self._stats)
            stats["buffered"] = len(self._buffer)
            return stats

    def drain_unsent(self) -> list[dict[str, Any]]:
        """Take the buffered records out (wire form), for a caller that gives up on the queue."""
        import json

        with self._flush_lock, self._lock:
            drained = [json.loads(r) for r in self._buffer]
            self._buffer.clear()
            return drained

    # -- lifecycle

    def start(self) -> SyncUsageTracker:
        """Start the background flush (every `flush_interval_seconds`, or sooner when a batch is full)."""
        with self._lock:
            if self._thread is not None:
                return self
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="usage-tracker-flush", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.flush_interval_seconds)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.flush()
            except Exception:  # the thread must survive anything; flush keeps the records itself
                logger.exception("background usage flush failed")

    def stop(self) -> int:
        """Stop the background flush and flush once more. Returns the records sent by that flush;
        raises `UsageFlushError` if records are still unsent (they stay buffered)."""
        thread = self._thread
        if thread is not None:
            self._stopping.set()
            self._wake.set()
            thread.join()
            self._thread = None
        sent = self.flush()
        left = self.get_stats()["buffered"]
        if left:
            raise UsageFlushError(
                f"{left} usage records could not be sent to the usage queue", details={"unsent": left}
            )
        return sent

    def __enter__(self) -> SyncUsageTracker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.stop()
        except UsageFlushError:
            if exc is None:
                raise
            # Do not hide the original error; the unsent records were logged by flush.

    def flush_after(self, handler: Callable[P, R]) -> Callable[P, R]:
        """Decorate a Lambda handler: whatever it tracked is flushed before the invocation returns
        (a frozen container sends nothing). Unsent records are logged and stay buffered for the next
        invocation; the handler's own result or error is never replaced."""

        @functools.wraps(handler)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return handler(*args, **kwargs)
            finally:
                self.flush()

        return wrapper


# What the specialised track_* methods record: (resource_type, quantity, metadata), shared by both faces.
def execution(workflow_id: object) -> tuple[str, Quantity, None, None, dict[str, MetadataValue]]:
    return "executions", 1, None, None, {"workflow_id": str(workflow_id)}


def tokens_used(tokens: int, model: str) -> tuple[str, Quantity, None, None, dict[str, MetadataValue]]:
    return "tokens", tokens, None, None, {"model": model}


def api_call(endpoint: str, method: str) -> tuple[str, Quantity, None, None, dict[str, MetadataValue]]:
    return "api_calls", 1, None, None, {"endpoint": endpoint, "method": method.upper()}


def storage(size_mb: Quantity, storage_type: str) -> tuple[str, Quantity, None, None, dict[str, MetadataValue]]:
    return "storage_mb", size_mb, None, None, {"storage_type": storage_type}


class UsageTracker:
    """The async usage client: ``await tracker.track(...)``, ``await tracker.flush()``, ``async with``.
    ``tracker.sync`` is the blocking `SyncUsageTracker` sharing its buffer and background flush.

    `usage_repository` is where records go: the usage queue's URL (default `USAGE_QUEUE_URL`) or a
    `UsageSender`. `batch_size` and `flush_interval_seconds` as for `SyncUsageTracker`."""

    def __init__(
        self,
        usage_repository: str | UsageSender | None = None,
        batch_size: int | None = None,
        flush_interval_seconds: float | None = None,
        *,
        settings: Settings | None = None,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], None] = time.sleep,
        dimension_gate: DimensionGate | None = None,
    ) -> None:
        self._sync = SyncUsageTracker(
            usage_repository,
            batch_size,
            flush_interval_seconds,
            settings=settings,
            max_buffered=max_buffered,
            clock=clock,
            sleep=sleep,
            dimension_gate=dimension_gate,
        )

    @property
    def sync(self) -> SyncUsageTracker:
        """The blocking face (Lambda handlers, threads): same methods, same buffer."""
        return self._sync

    @property
    def batch_size(self) -> int:
        return self._sync.batch_size

    @property
    def flush_interval_seconds(self) -> float:
        return self._sync.flush_interval_seconds

    async def track(
        self,
        tenant_id: TenantIdLike,
        resource_type: str,
        quantity: Quantity = 1,
        timestamp: datetime | None = None,
        record_id: str | None = None,
        metadata: dict[str, MetadataValue] | None = None,
        *,
        dimensions: dict[str, str] | None = None,
        entity_id: str | None = None,
    ) -> str:
        """Validate and buffer (on the loop: no I/O, except registering a dimension value or entity
        this process has not seen, on the worker pool); a due flush runs on the worker pool. Returns the
        record id; raises as `SyncUsageTracker.track` does."""
        sync = self._sync
        record = sync.prepare(
            tenant_id,
            resource_type,
            quantity,
            timestamp,
            record_id,
            metadata,
            dimensions=dimensions,
            entity_id=entity_id,
        )
        if sync.needs_admission(record):
            await run_blocking(sync.admit, record)
        record_id, due = sync.enqueue(record)
        if due:
            await run_blocking(self._sync.flush)
        return record_id

    async def track_execution(self, tenant_id: TenantIdLike, workflow_id: object) -> str:
        return await self.track(tenant_id, *execution(workflow_id))

    async def track_tokens(self, tenant_id: TenantIdLike, tokens: int, model: str) -> str:
        return await self.track(tenant_id, *tokens_used(tokens, model), dimensions={"model": model})

    async def track_api_call(self, tenant_id: TenantIdLike, endpoint: str, method: str) -> str:
        return await self.track(tenant_id, *api_call(endpoint, method))

    async def track_storage(self, tenant_id: TenantIdLike, size_mb: Quantity, storage_type: str) -> str:
        return await self.track(tenant_id, *storage(size_mb, storage_type))

    async def flush(self) -> int:
        """Send everything buffered; the number of records SQS accepted (the rest stay buffered)."""
        return await run_blocking(self._sync.flush)

    def get_stats(self) -> TrackerStats:
        """Counters (tracked, flushed, failed, buffered, batches, messages); no I/O, so not awaited."""
        return self._sync.get_stats()

    async def drain_unsent(self) -> list[dict[str, Any]]:
        """Take the buffered records out (waits for a flush in progress, off the loop)."""
        return await run_blocking(self._sync.drain_unsent)

    def start(self) -> TrackerStarted:
        """Start the background flush (a thread: it never runs on the event loop). The flush is running
        when this returns, so ``tracker.start()`` needs no await (the design document's form); the
        answer is awaitable too, so ``await tracker.start()`` works as well and gives the tracker."""
        self._sync.start()
        return TrackerStarted(self)

    async def stop(self) -> int:
        """Stop the background flush and flush once more (off the loop); raises `UsageFlushError` if
        records are still unsent."""
        return await run_blocking(self._sync.stop)

    async def __aenter__(self) -> UsageTracker:
        return self.start().tracker

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # stop() joins a thread and does network I/O: keep the event loop free meanwhile.
        await run_blocking(self._sync.__exit__, exc_type, exc, tb)


class TrackerStarted:
    """What `UsageTracker.start()` answers: the started tracker (``.tracker``), awaitable for asyncio code
    that awaits every tracker call (``tracker = await UsageTracker(...).start()``). Awaiting it does no I/O
    and never yields to the loop; not awaiting it leaves nothing pending (it is not a coroutine, so Python
    warns about nothing)."""

    __slots__ = ("tracker",)

    def __init__(self, tracker: UsageTracker) -> None:
        self.tracker = tracker

    def __await__(self) -> Generator[Any, None, UsageTracker]:
        return self._started().__await__()

    async def _started(self) -> UsageTracker:
        return self.tracker

    def __repr__(self) -> str:
        return f"<TrackerStarted {self.tracker!r}>"
