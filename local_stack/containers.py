"""Lambda's execution environments on one machine: each function gets a pool of worker processes
("containers"), each with its own module state, created on first use (cold) and reused (warm), up to the
function's concurrency.

A container is a child of a fork server that has the heavy third-party libraries imported already, so a
cold start costs a fork plus the handler's own imports. The child takes the function's environment,
imports `functions.<name>.handler`, then answers one event at a time over a pipe, as Lambda's runtime API
does. A handler that runs past its timeout is killed with its container (Lambda resets the environment
after a timeout); a container that dies mid-invocation is dropped; the next invocation starts a new one.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from typing import Any

log = logging.getLogger("local_stack.containers")

# Imported once by the fork server and shared by every container: third-party code only. Nothing of the
# layer that reads the environment at import time (Powertools Logger/Metrics instances) may be here.
PRELOAD = (
    "boto3",
    "botocore.session",
    "pydantic",
    "aws_lambda_powertools",
    "aws_lambda_powertools.event_handler",
    "aws_lambda_powertools.utilities.batch",
)

# Lambda limits the init phase (imports, module-level clients) to 10 s, apart from the function timeout.
# Locally a shared, busy machine can take longer to import boto3 and Powertools: a generous limit, so a
# slow cold start is not reported as the handler's timeout.
INIT_TIMEOUT_SECONDS = 60.0
# How long an event-source invocation (no API Gateway budget) waits for a free container.
QUEUE_WAIT_SECONDS = 900.0

_context: ForkServerContext | None = None
_context_lock = threading.Lock()


def fork_server() -> ForkServerContext:
    """The multiprocessing context every pool shares (its fork server starts with the first container)."""
    global _context
    with _context_lock:
        if _context is None:
            ctx = multiprocessing.get_context("forkserver")
            assert isinstance(ctx, ForkServerContext)
            ctx.set_forkserver_preload(list(PRELOAD))
            _context = ctx
        return _context


def start_fork_server() -> None:
    """Start the fork server now (its preload takes a second or two): the stack does this first, so it
    overlaps with DynamoDB Local's start."""
    from multiprocessing import forkserver

    fork_server()
    forkserver.ensure_running()


def stop_fork_server() -> None:
    """Stop the fork server and the resource tracker it started (both would exit with this process; Ctrl-C
    must leave nothing behind before the stack says "stopped"). Private methods, present in 3.11-3.13."""
    from multiprocessing import forkserver, resource_tracker

    for server in (forkserver._forkserver, resource_tracker._resource_tracker):
        stop = getattr(server, "_stop", None)
        if stop is not None:
            stop()


# ---------------------------------------------------------------------------------------------- errors


class FunctionError(Exception):
    """The handler raised: Lambda's `Unhandled` function error, with the handler's error type and message."""

    def __init__(self, function: str, error_type: str, message: str, trace: str = "") -> None:
        super().__init__(message)
        self.function = function
        self.error_type = error_type
        self.trace = trace


class FunctionTimeout(Exception):
    """No answer within the wait: the container was killed. `integration` is True when API Gateway's
    integration timeout, not the function's own timeout, ran out first (API Gateway answers 504)."""

    def __init__(self, function: str, seconds: float, *, integration: bool) -> None:
        super().__init__(f"{function} timed out after {seconds:.2f} seconds")
        self.function = function
        self.integration = integration


class FunctionCrashed(Exception):
    """The container exited during the invocation (Lambda's `Runtime.ExitError`)."""


class FunctionThrottled(Exception):
    """Every container of the function stayed busy for the whole wait (Lambda's 429 TooManyRequests)."""


# ---------------------------------------------------------------------------------------------- child


@dataclass
class LocalLambdaContext:
    """The attributes of Lambda's context object that Powertools and handlers read."""

    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    invoked_function_arn: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local/[$LATEST]local"
    function_version: str = "$LATEST"
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class ContainerConfig:
    """What a container needs to become the function: the module to import and its environment."""

    function: str
    module: str
    env: dict[str, str]
    memory_mb: int
    timeout_seconds: float
    region: str = "us-east-1"
    setup: Callable[[], None] | None = None  # run in the child after the environment, before the import


def _container_main(conn: Connection, config: ContainerConfig) -> None:
    # Ctrl-C goes to the whole process group: the stack stops its containers itself, in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.clear()
    os.environ.update(config.env)
    import importlib

    try:
        if config.setup is not None:
            config.setup()
        handler = importlib.import_module(config.module).handler
    except BaseException as exc:  # Lambda's Runtime.ImportModuleError: reported on the first invocation
        conn.send(("init_error", type(exc).__name__, str(exc), traceback.format_exc()))
        return
    conn.send(("ready",))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return  # the stack is gone: so is this container
        if request is None:
            return
        request_id, event = request
        context = LocalLambdaContext(
            function_name=f"billing-local-{config.function}",
            memory_limit_in_mb=config.memory_mb,
            timeout_seconds=int(config.timeout_seconds),
            invoked_function_arn=f"arn:aws:lambda:{config.region}:000000000000:function:billing-local-{config.function}",
            aws_request_id=request_id,
        )
        try:
            result = handler(event, context)
        except Exception as exc:
            conn.send(("error", type(exc).__name__, str(exc), traceback.format_exc()))
            continue
        try:
            conn.send(("ok", result))
        except Exception as exc:  # not picklable: Lambda could not serialize it either
            conn.send(("error", "Runtime.MarshalError", f"{type(exc).__name__}: {exc}", ""))


# ---------------------------------------------------------------------------------------------- parent


class Container:
    """One worker process of one function, and the parent's end of its pipe."""

    def __init__(self, config: ContainerConfig) -> None:
        self.function = config.function
        parent, child = fork_server().Pipe()
        self._conn = parent
        self.process = fork_server().Process(
            target=_container_main, args=(child, config), name=f"lambda-{config.function}", daemon=True
        )
        self.process.start()
        child.close()
        self.cold = True  # until its first invocation has finished
        self.invocations = 0
        self._ready = False

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def wait_ready(self, wait: float) -> None:
        """Wait for the end of the init phase (the handler imported); FunctionError if it failed."""
        if self._ready:
            return
        message = self._receive(time.monotonic() + wait)
        if message[0] == "init_error":
            _, error_type, text, trace = message
            raise FunctionError(self.function, error_type, text, trace)
        self._ready = True

    def invoke(self, event: dict[str, Any], wait: float) -> Any:
        """The handler's result; FunctionError / FunctionCrashed / TimeoutError (the container is then
        dead or must be killed by the caller)."""
        self.wait_ready(INIT_TIMEOUT_SECONDS)
        deadline = time.monotonic() + wait
        try:
            self._conn.send((str(uuid.uuid4()), event))
        except (BrokenPipeError, OSError) as exc:
            raise FunctionCrashed(f"{self.function}: container exited ({exc})") from exc
        message = self._receive(deadline)
        self.invocations += 1
        self.cold = False
        if message[0] == "ok":
            return message[1]
        _, error_type, text, trace = message
        raise FunctionError(self.function, error_type, text, trace)

    def _receive(self, deadline: float) -> tuple[Any, ...]:
        remaining = max(0.0, deadline - time.monotonic())
        try:
            answered = self._conn.poll(remaining)
            message: tuple[Any, ...] = self._conn.recv() if answered else ()
        except (EOFError, OSError) as exc:
            self.process.join(0.5)
            code = self.process.exitcode
            raise FunctionCrashed(f"{self.function}: container exited (exit code {code})") from exc
        if not answered:
            raise TimeoutError
        return message

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self._conn.close()

    def close(self) -> None:
        """Ask the container to exit, then make sure it did."""
        with contextlib.suppress(OSError):
            self._conn.send(None)
        self.process.join(1)
        self.kill()


@dataclass
class PoolStats:
    cold_starts: int = 0
    invocations: int = 0
    timeouts: int = 0
    crashes: int = 0
    throttles: int = 0
    peak_concurrency: int = 0
    pids: set[int] = field(default_factory=set)


class ContainerPool:
    """The containers of one function: at most `concurrency` at a time, warm ones reused newest first
    (as Lambda routes to the most recently used environment), callers queued while all are busy."""

    def __init__(self, config: ContainerConfig, concurrency: int, *, queue_limit: int = 1024) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.config = config
        self.concurrency = concurrency
        self.queue_limit = queue_limit
        self.stats = PoolStats()
        self._idle: list[Container] = []
        self._busy: set[Container | _Starting] = set()
        self._waiting = 0
        self._closed = False
        self._changed = threading.Condition()

    def _acquire(self, deadline: float) -> Container | _Starting:
        """An idle container, or a slot to start one in; FunctionThrottled if none frees up in time."""
        with self._changed:
            saturated = not self._idle and len(self._busy) >= self.concurrency
            if saturated and self._waiting >= self.queue_limit:
                self.stats.throttles += 1
                raise FunctionThrottled(f"{self.config.function}: {self._waiting} invocations already queued")
            self._waiting += 1
            try:
                while True:
                    if self._closed:
                        raise FunctionCrashed(f"{self.config.function}: the local stack is stopping")
                    if self._idle:
                        container = self._idle.pop()
                        self._busy.add(container)
                        return container
                    if len(self._busy) < self.concurrency:
                        slot = _Starting()
                        self._busy.add(slot)
                        return slot
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        self.stats.throttles += 1
                        raise FunctionThrottled(f"{self.config.function}: all {self.concurrency} containers busy")
                    self._changed.wait(remaining)
            finally:
                self._waiting -= 1
                self.stats.peak_concurrency = max(self.stats.peak_concurrency, len(self._busy))

    def invoke(self, event: dict[str, Any], timeout: float, *, budget: float | None = None) -> Any:
        """Run `event` in a container: queued until one is free, then given the function's `timeout`.
        `budget` is API Gateway's integration timeout: queueing and running together get no more (a
        request still queued when it runs out is throttled, one still running timed out as `integration`).
        Without a budget (pollers) a request waits for a container as long as QUEUE_WAIT_SECONDS."""
        started = time.monotonic()
        slot = self._acquire(started + (budget if budget is not None else QUEUE_WAIT_SECONDS))
        queued = time.monotonic() - started  # a cold start (process + init) is not charged to the budget
        if isinstance(slot, _Starting):
            try:
                container = Container(self.config)
            except BaseException:
                with self._changed:
                    self._busy.discard(slot)
                    self._changed.notify()
                raise
            with self._changed:  # the slot becomes the container in one step: never one too many
                self._busy.discard(slot)
                self._busy.add(container)
                self.stats.cold_starts += 1
        else:
            container = slot
        if container.pid is not None:
            self.stats.pids.add(container.pid)
        wait, integration = timeout, False
        if budget is not None and budget - queued <= timeout:
            wait, integration = max(0.0, budget - queued), True
        keep = False
        try:
            result = container.invoke(event, wait)
            keep = True
            return result
        except FunctionError:
            keep = container.process.is_alive() and container.invocations > 0
            raise
        except TimeoutError:
            self.stats.timeouts += 1
            raise FunctionTimeout(self.config.function, wait, integration=integration) from None
        except FunctionCrashed:
            self.stats.crashes += 1
            raise
        finally:
            self.stats.invocations += 1
            if not keep:
                container.kill()
            with self._changed:
                self._busy.discard(container)
                if keep and not self._closed:
                    self._idle.append(container)
                elif keep:
                    container.close()
                self._changed.notify()

    def prewarm(self, wait: float = INIT_TIMEOUT_SECONDS) -> None:
        """Start one container and let it finish its init phase, so the first invocation is warm."""
        with self._changed:
            if self._closed or len(self._busy) + len(self._idle) >= self.concurrency:
                return
            slot = _Starting()
            self._busy.add(slot)
        container: Container | None = None
        try:
            container = Container(self.config)
            container.wait_ready(wait)
        except BaseException:
            if container is not None:
                container.kill()
            raise
        finally:
            with self._changed:
                self._busy.discard(slot)
                if container is not None and container._ready:
                    self.stats.cold_starts += 1
                    if container.pid is not None:
                        self.stats.pids.add(container.pid)
                    self._idle.append(container)
                self._changed.notify()
        if self._closed:
            self.close()

    def containers(self) -> int:
        with self._changed:
            return len(self._idle) + len(self._busy)

    def close(self) -> None:
        """Stop every idle container; busy ones are killed (the stack is stopping)."""
        with self._changed:
            self._closed = True
            idle, busy = list(self._idle), [c for c in self._busy if isinstance(c, Container)]
            self._idle.clear()
            self._changed.notify_all()
        for container in idle:
            container.close()
        for container in busy:
            container.kill()


class _Starting:
    """Holds a concurrency slot while a container starts (outside the pool's lock)."""
