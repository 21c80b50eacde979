"""`python -m local_stack` as a real subprocess for end-to-end tests: started from the repository root with
a clean environment, its output read on a thread (the pipe never fills, however long the test runs), its
banner parsed into the endpoints it serves, stopped with a signal and killed if it does not exit."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import pytest

if TYPE_CHECKING:
    from local_stack.stack import LocalStack, StackOptions

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 90.0  # DynamoDB Local's JVM on a busy 2-core runner
KILL_TIMEOUT = 10.0
REQUEST_TIMEOUT = 120.0

T = TypeVar("T")

_TOKEN = re.compile(r"operator token: (\S+)")
_MOTO = re.compile(r"moto[^:]*: (http\S+)")
_DYNAMODB = re.compile(r"DynamoDB Local: (http\S+)")
_READY = re.compile(r"READY (\S+)")


@dataclass(frozen=True)
class StackBanner:
    """What the stack printed before `READY <url>`: where it serves and how to call it as the operator."""

    base_url: str
    operator_token: str
    moto_url: str
    dynamodb_url: str
    lines: tuple[str, ...]

    @classmethod
    def parse(cls, lines: list[str]) -> StackBanner:
        """The banner in `lines` (the last line being `READY <url>`); AssertionError if a field is missing."""
        found: dict[str, str] = {}
        for line in lines:
            for name, pattern in (("token", _TOKEN), ("moto", _MOTO), ("dynamodb", _DYNAMODB)):
                if match := pattern.search(line):
                    found[name] = match.group(1)
        ready = _READY.match(lines[-1]) if lines else None
        missing = {"token", "moto", "dynamodb"} - set(found)
        if ready is None or missing:
            raise AssertionError(f"incomplete banner (missing {sorted(missing)}):\n" + "\n".join(lines))
        return cls(ready.group(1), found["token"], found["moto"], found["dynamodb"], tuple(lines))


class LocalStackProcess:
    """One `python -m local_stack` subprocess. Use `start()`, then `wait_ready()`; as a context manager it
    is stopped (SIGTERM, then SIGKILL) on exit. Every output line is kept in `output`, in order."""

    def __init__(self, process: subprocess.Popen[str], stderr_path: Path | None) -> None:
        self.process = process
        self.stderr_path = stderr_path
        self._lines: list[str] = []
        self._eof = False
        self._changed = threading.Condition()
        self._cursor = 0  # index of the first line `wait_for` has not looked at yet
        self._banner: StackBanner | None = None
        threading.Thread(target=self._pump, name=f"local_stack-{process.pid}-stdout", daemon=True).start()

    @classmethod
    def start(cls, *args: str, port: int = 0, stderr_path: Path | None = None) -> LocalStackProcess:
        """Start `python -m local_stack --port <port> <args>` from the repository root. AWS endpoint and
        Stripe variables of the test process are not passed on: the stack sets its own. Its stderr goes
        to `stderr_path` if given, else into the same stream as stdout."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_ENDPOINT_URL", "STRIPE_"))}
        env["PYTHONUNBUFFERED"] = "1"
        # Lambda's timeouts are wall-clock; a test runner's 2 shared cores can stretch a warm handler past
        # its deployed timeout. The runtime's own tests prove timeouts; these prove behaviour.
        env.setdefault("LOCAL_TIMEOUT_SCALE", "3")
        stderr = stderr_path.open("w") if stderr_path is not None else None
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "local_stack", "--port", str(port), *args],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr if stderr is not None else subprocess.STDOUT,
                text=True,
            )
        finally:
            if stderr is not None:
                stderr.close()  # the child holds its own descriptor
        return cls(process, stderr_path)

    @classmethod
    def running(cls, *args: str, timeout: float = STARTUP_TIMEOUT) -> Iterator[LocalStackProcess]:
        """For a fixture (`yield from`): a stack started with `args` and ready, stopped afterwards."""
        with cls.start(*args) as stack:
            stack.wait_ready(timeout)
            yield stack

    def _pump(self) -> None:
        # A reader thread, not select(): the text wrapper buffers several lines behind one readable event.
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self._lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    @property
    def output(self) -> list[str]:
        """Every line read so far (a copy)."""
        with self._changed:
            return list(self._lines)

    def wait_for(self, prefix: str, timeout: float) -> str:
        """The next line starting with `prefix` after those already waited through; AssertionError with
        the output if the process ends or `timeout` seconds pass first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                while self._cursor < len(self._lines):
                    line = self._lines[self._cursor]
                    self._cursor += 1
                    if line.startswith(prefix):
                        return line
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    break
                self._changed.wait(min(remaining, 0.5))
        raise AssertionError(f"no {prefix!r} line; exit code {self.process.poll()}\n{self.diagnostics()}")

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> StackBanner:
        """Wait for `READY <url>` and parse the banner printed before it."""
        self.wait_for("READY ", timeout)
        self._banner = StackBanner.parse(self.output[: self._cursor])
        return self._banner

    @property
    def banner(self) -> StackBanner:
        """The banner parsed by `wait_ready`."""
        assert self._banner is not None, "wait_ready() first"
        return self._banner

    def request(self, method: str, path: str, body: Any = None, *, token: str | None = None) -> tuple[int, Any]:
        """Call the stack's API with a JSON body, as the operator unless `token` is given: (status, JSON body)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.banner.base_url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {token or self.banner.operator_token}",
                "Content-Type": "application/json",
            },
        )
        try:
            # Generous: a first call may start cold containers on a runner whose 2 cores are shared.
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def diagnostics(self, last: int = 80) -> str:
        """The last `last` output lines, and the tail of stderr when it goes to a file."""
        text = "output (tail):\n" + "\n".join(self.output[-last:])
        if self.stderr_path is not None and self.stderr_path.exists():
            text += "\nstderr (tail):\n" + self.stderr_path.read_text()[-4000:]
        return text

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send `sig` (if still running) and wait `timeout` seconds for the exit, then SIGKILL: the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=KILL_TIMEOUT)

    def __enter__(self) -> LocalStackProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def stack_fixture(scope: Literal["module", "package", "session"]) -> Any:
    """The `stack` fixture at `scope`: a LocalStackProcess started with `--log-level WARNING` plus the args
    of the closest `stack_args` mark (e.g. `pytestmark = [pytest.mark.stack_args("--no-pollers",
    "--no-hooks")]` for a stack that only answers) and, when the module defines a `stack_environ` fixture,
    the environment variables it returns; stopped when the scope ends."""

    @pytest.fixture(scope=scope, name="stack")
    def stack(request: pytest.FixtureRequest) -> Iterator[LocalStackProcess]:
        """The local stack over HTTP (see `stack_fixture`)."""
        mark = request.node.get_closest_marker("stack_args")
        try:
            environ: Mapping[str, str] = request.getfixturevalue("stack_environ")
        except pytest.FixtureLookupError:
            environ = {}
        with pytest.MonkeyPatch.context() as env:
            for name, value in environ.items():
                env.setenv(name, value)  # the child process copies this process's environment at start
            yield from LocalStackProcess.running("--log-level", "WARNING", *(mark.args if mark is not None else ()))

    return stack


@contextmanager
def in_process(options: StackOptions, environ: Mapping[str, str] = {}) -> Iterator[LocalStack]:
    """The local stack started inside this process (`environ` exported first: its containers take the
    environment it starts with), stopped afterwards with this process's environment and the layer's
    settings and clients as they were."""
    from billing_platform import clients
    from billing_platform.settings import get_settings
    from local_stack.stack import LocalStack

    saved = dict(os.environ)
    os.environ.update(environ)
    try:
        stack = LocalStack(options)
        try:
            stack.start()
            yield stack
        finally:
            stack.stop()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()
        clients.reset()


def eventually(
    check: Callable[[], tuple[bool, T]],
    timeout: float,
    interval: float = 0.2,
    context: Callable[[], str] | None = None,
) -> T:
    """Poll `check`, which returns (done, value), every `interval` seconds until done and return the value;
    it is checked at least once, the last time at or after the deadline. Otherwise AssertionError with
    the last value, and `context()` if given."""
    deadline = time.monotonic() + timeout
    while True:
        done, last = check()
        if done:
            return last
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    message = f"condition not reached in {timeout} s; last value: {last!r}"
    raise AssertionError(message + (f"\n{context()}" if context is not None else ""))
