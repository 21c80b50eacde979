"""The banner of `make dev`, followed literally as a new user does: every `Try:` line pasted into a shell must
answer 2xx (the api-keys line once sent no body: 422), and a plain asyncio program given only the banner's
`export` line must reach the stack's DynamoDB Local and SQS through the library (it once had no region, no
credentials and no queue URL to go on)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest

from tests.factories.local_stack_process import LocalStackProcess

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("local_stack_banner"),
    pytest.mark.skipif(shutil.which("curl") is None, reason="the banner's lines are curl commands"),
    pytest.mark.stack_args("--no-pollers", "--no-hooks"),
]

KEY_PLACEHOLDER = "<tenant api key>"


def _section(lines: tuple[str, ...], title: str) -> list[str]:
    """The shell commands under `title` (continuation lines joined), up to the next unindented line."""
    start = lines.index(title) + 1
    commands: list[str] = []
    pending = ""
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        pending += line.strip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        commands.append(pending)
        pending = ""
    return commands


def test_every_try_line_of_the_banner_answers_2xx(stack: LocalStackProcess) -> None:
    commands = _section(stack.banner.lines, "Try:")
    assert len(commands) == 4, commands
    assert all(command.startswith("curl ") for command in commands), commands
    key: str | None = None
    for command in commands:
        if KEY_PLACEHOLDER in command:
            assert key is not None, "the banner uses a tenant key before a line that creates one"
            command = command.replace(KEY_PLACEHOLDER, key)
        run = subprocess.run(
            ["bash", "-c", command + " -w '\\n%{http_code}'"], capture_output=True, text=True, timeout=60, check=True
        )
        body, _, status = run.stdout.rpartition("\n")
        assert status.startswith("2"), f"{command}\n-> {status} {body}"
        answer = json.loads(body)
        if "/api-keys" in command:
            key = answer["secret"]
    assert key is not None


PROGRAM = """
import asyncio, sys
from decimal import Decimal
from billing_platform import EntitlementEnforcer, UsageTracker

async def main(tenant: str) -> None:
    check = await EntitlementEnforcer().check_and_record(tenant, "tokens", Decimal(1500))
    assert check.allowed, check
    async with UsageTracker() as tracker:
        await tracker.track_tokens(tenant, 1500, "gpt-x")
    print(check.remaining, tracker.get_stats()["flushed"])

asyncio.run(main(sys.argv[1]))
"""


def test_the_banners_export_line_is_all_a_library_program_needs(stack: LocalStackProcess) -> None:
    lines = stack.banner.lines
    title = next(line for line in lines if line.startswith("The library"))
    (export,) = _section(lines, title)
    assert export.startswith("export "), export
    exports = shlex.split(export)[1:]
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}  # nothing else of ours
    env.update(dict(item.split("=", 1) for item in exports))
    status, created = stack.request("POST", "/v1/tenants/t_banner_lib/api-keys", {"name": "library"})
    assert status == 201, created
    run = subprocess.run(
        [sys.executable, "-c", PROGRAM, "t_banner_lib"], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-3000:]
    remaining, flushed = run.stdout.split()[-2:]
    assert (remaining, flushed) == ("8500", "1")
