"""The README's `make dev`, end to end: `python -m local_stack` as a real subprocess on a free port, called
over HTTP, then stopped with SIGINT (what Ctrl-C sends). It must exit 0 and leave no process and no
listening port behind; a crash (SIGKILL) must not orphan DynamoDB Local either.

Linux only: child processes are read from /proc.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from billing_platform import resources
from local_stack.dynamodb_local import free_port
from tests.factories.local_stack_process import STARTUP_TIMEOUT, LocalStackProcess, eventually

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads child processes from /proc"),
]

SHUTDOWN_TIMEOUT = 30.0
URL = re.compile(r"http://127\.0\.0\.1:(\d+)")

StartStack = Callable[[int], LocalStackProcess]  # port -> a started stack, killed at teardown


# ------------------------------------------------------------------------------------------ processes


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, None if it does not exist."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may hold spaces: split after the last ')'.
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[1] == pid and stat[0] != "Z":
                found.add(int(entry.name))
    return found


def running(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def kill_tree(stack: LocalStackProcess) -> None:
    """Last resort when a test fails half-way: never leave processes to the next test."""
    for child in children_of(stack.process.pid):
        os.kill(child, signal.SIGKILL)
    if stack.process.poll() is None:
        stack.process.kill()
        stack.process.wait(10)


@pytest.fixture
def local_stack_process(tmp_path: Path) -> Iterator[StartStack]:
    started: list[LocalStackProcess] = []

    def start(port: int) -> LocalStackProcess:
        stack = LocalStackProcess.start(port=port, stderr_path=tmp_path / "local_stack.stderr")
        started.append(stack)
        return stack

    yield start
    for stack in started:
        kill_tree(stack)


def java_started(stack: LocalStackProcess) -> set[int]:
    """The stack's child processes, once DynamoDB Local (java) is one of them."""

    def check() -> tuple[bool, set[int]]:
        children = children_of(stack.process.pid)
        return bool(children), children

    return eventually(check, STARTUP_TIMEOUT, interval=0.1, context=stack.diagnostics)


def http(method: str, url: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


# ------------------------------------------------------------------------------------------ tests


def test_local_stack_serves_http_and_ctrl_c_stops_every_process_and_port(local_stack_process: StartStack) -> None:
    port = free_port()
    stack = local_stack_process(port)
    base_url = stack.wait_ready(STARTUP_TIMEOUT).base_url
    assert base_url == f"http://127.0.0.1:{port}"
    # Every port the banner printed (API, DynamoDB Local, moto) is listening now and must not be later.
    ports = {int(p) for line in stack.banner.lines for p in URL.findall(line)}
    assert port in ports
    assert len(ports) >= 3, stack.diagnostics()
    assert all(listening(p) for p in ports)
    children = children_of(stack.process.pid)
    assert children, "DynamoDB Local (java) should be a child process"

    status, headers, body = http("GET", f"{base_url}/health")
    assert status == 200, body
    assert json.loads(body) == {"status": "ok"}

    status, headers, body = http("GET", f"{base_url}/openapi.json")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    document = json.loads(body)
    from openapi_spec_validator import validate

    validate(document)
    known_paths = {route.path for route, _ in resources.routes()}
    assert "/health" in document["paths"]
    assert set(document["paths"]) <= known_paths, "the document may only describe routes of resources.routes()"

    status, headers, body = http("GET", f"{base_url}/no/such/route")
    assert status == 404
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["code"] == "not_found"

    stack.process.send_signal(signal.SIGINT)
    stack.wait_for("stopped", SHUTDOWN_TIMEOUT)
    # Checked before the process exits: the orderly stop, not the parent-death signal, ended them.
    assert not [pid for pid in children if running(pid)], "child processes still run after 'stopped'"
    assert stack.process.wait(SHUTDOWN_TIMEOUT) == 0, stack.diagnostics()
    assert not [p for p in ports if listening(p)], "a port is still listening after Ctrl-C"


def test_ctrl_c_during_startup_still_stops_dynamodb_local(local_stack_process: StartStack) -> None:
    port = free_port()
    stack = local_stack_process(port)
    children = java_started(stack)

    stack.process.send_signal(signal.SIGINT)
    stack.wait_for("stopped", STARTUP_TIMEOUT)
    assert not [pid for pid in children if running(pid)], "java still runs after 'stopped'"
    assert stack.process.wait(SHUTDOWN_TIMEOUT) == 0, stack.diagnostics()
    assert not listening(port)


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="the parent-death signal is set with util-linux setpriv")
def test_a_killed_local_stack_does_not_orphan_dynamodb_local(local_stack_process: StartStack) -> None:
    stack = local_stack_process(free_port())
    children = java_started(stack)

    stack.process.kill()  # SIGKILL: no handler, no finally, no stop()
    stack.process.wait(10)
    eventually(lambda: (not (alive := [pid for pid in children if running(pid)]), alive), 15, interval=0.1)
