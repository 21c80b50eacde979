"""The library as a host program uses it: a plain asyncio program (`python program.py`, a process of its
own) against a moto server, given only the environment a service would have.

- `UsageTracker.start()` works unawaited (the design document's form) and awaited (asyncio code awaits
  every tracker call): both trackers' records reach the queue, and no "never awaited" warning is left.
- Logs: outside Lambda the library prints nothing to stdout (its `billing_platform.*` loggers have only a
  NullHandler) and, once the host configures `logging`, its records arrive there under those names; inside
  Lambda (AWS_LAMBDA_FUNCTION_NAME set) they are Powertools JSON lines on stdout, service "billing" when
  POWERTOOLS_SERVICE_NAME is unset, never "service_undefined"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from billing_platform import resources
from local_stack.dynamodb_local import free_port
from local_stack.provision import create_queue, create_tables

ROOT = Path(__file__).resolve().parents[3]

TRACKER_PROGRAM = textwrap.dedent(
    """
    import asyncio, json, sys
    from billing_platform import UsageTracker

    async def main(tenant):
        unawaited = UsageTracker(flush_interval_seconds=0.2)
        unawaited.start()  # as the design document writes it
        await unawaited.track(tenant, "tokens", 5)
        for _ in range(200):  # the background flush sends it: start() really started
            if unawaited.get_stats()["flushed"]:
                break
            await asyncio.sleep(0.05)
        flushed_by_background = unawaited.get_stats()["flushed"]
        await unawaited.stop()

        tracker = UsageTracker(flush_interval_seconds=60)
        started = await tracker.start()
        await started.track(tenant, "tokens", 7)
        await tracker.stop()
        print(json.dumps({"background": flushed_by_background, "same": started is tracker,
                          "stats": [unawaited.get_stats()["flushed"], tracker.get_stats()["flushed"]]}))

    asyncio.run(main(sys.argv[1]))
    """
)

LOGGING_PROGRAM = textwrap.dedent(
    """
    import asyncio, logging, sys
    if sys.argv[2] == "host-configures-logging":
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="HOST %(name)s %(levelname)s %(message)s")
    from billing_platform import EntitlementEnforcer
    from billing_platform.auth.caller import Actor
    from billing_platform.auth.service import ApiKeyService

    async def main(tenant):
        ApiKeyService().create(tenant, name="host", actor=Actor("operator:test"))  # a known tenant, default plan
        answer = await EntitlementEnforcer().check_and_record(tenant, "executions", 1)
        sys.stderr.write(f"ALLOWED {answer.allowed}\\n")

    asyncio.run(main(sys.argv[1]))
    """
)


@pytest.fixture(scope="module")
def moto_server() -> Iterator[dict[str, str]]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    creds: dict[str, Any] = {"region_name": "us-east-1", "aws_access_key_id": "local", "aws_secret_access_key": "local"}
    names = create_tables(boto3.client("dynamodb", endpoint_url=endpoint, **creds))
    names.update(create_queue(boto3.client("sqs", endpoint_url=endpoint, **creds), resources.USAGE_QUEUE))
    # What a service beside the platform is given (the local stack's banner prints the same): no POWERTOOLS_*.
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
        "AWS_ENDPOINT_URL_SQS": endpoint,
        **names,
    }
    yield env
    server.stop()


def run(program: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-c", program, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def queued(env: dict[str, str], tenant: str) -> list[str]:
    sqs = boto3.client("sqs", endpoint_url=env["AWS_ENDPOINT_URL_SQS"], region_name="us-east-1")
    found: list[str] = []
    while messages := sqs.receive_message(QueueUrl=env["USAGE_QUEUE_URL"], MaxNumberOfMessages=10).get("Messages"):
        for message in messages:
            found += [r["quantity"] for r in json.loads(message["Body"])["records"] if r["tenant_id"] == tenant]
            sqs.delete_message(QueueUrl=env["USAGE_QUEUE_URL"], ReceiptHandle=message["ReceiptHandle"])
    return sorted(found)


def test_tracker_start_works_unawaited_and_awaited_in_an_asyncio_program(moto_server: dict[str, str]) -> None:
    tenant = f"t_host_{uuid.uuid4().hex[:8]}"
    done = run(TRACKER_PROGRAM, moto_server, tenant)
    assert done.returncode == 0, done.stderr
    assert "never awaited" not in done.stderr
    report = json.loads(done.stdout)
    assert report == {"background": 1, "same": True, "stats": [1, 1]}
    assert queued(moto_server, tenant) == ["5", "7"]


def test_outside_lambda_the_library_prints_nothing_unless_the_host_configures_logging(
    moto_server: dict[str, str],
) -> None:
    silent = run(LOGGING_PROGRAM, moto_server, f"t_quiet_{uuid.uuid4().hex[:8]}", "bare")
    assert silent.returncode == 0, silent.stderr
    assert silent.stdout == ""
    assert silent.stderr == "ALLOWED True\n"

    hosted = run(LOGGING_PROGRAM, moto_server, f"t_host_{uuid.uuid4().hex[:8]}", "host-configures-logging")
    assert hosted.returncode == 0, hosted.stderr
    assert hosted.stdout == ""
    library_lines = [line for line in hosted.stderr.splitlines() if line.startswith("HOST billing_platform.")]
    assert "HOST billing_platform.entitlements.reconcile INFO quota layout set" in library_lines, hosted.stderr


def test_inside_lambda_the_library_logs_powertools_json_with_a_real_service_name(
    moto_server: dict[str, str],
) -> None:
    env = {**moto_server, "AWS_LAMBDA_FUNCTION_NAME": "BillingPlatform-host"}
    done = run(LOGGING_PROGRAM, env, f"t_fn_{uuid.uuid4().hex[:8]}", "bare")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    layout = [line for line in lines if line["message"] == "quota layout set"]
    assert len(layout) == 1, done.stdout
    assert layout[0]["service"] == "billing"
    assert layout[0]["level"] == "INFO"
    assert all(line["service"] != "service_undefined" for line in lines)
