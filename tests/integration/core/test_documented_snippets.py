"""Every code block of the design document (docs/billing-library-design.md) that calls the library, run
as written against moto (DynamoDB, SQS) and a fake Stripe served over HTTP, with only its import lines
adapted (`infrastructure.billing` -> `billing_platform`). What a block leaves undefined (`provider`,
`enforcer`, `tenant_id`, `usage_repo`, `run_workflow` ...) is given by the test, as an application's own
code would; what the block did is then checked. A block added to the document fails
`test_every_block_is_run_or_explained` until it is run here or listed with its reason.

Print what each block returned with ``pytest -s -k documented_snippets``."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import json
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import boto3
import pytest
from fastapi import Depends
from fastapi.testclient import TestClient

from billing_platform import EntitlementEnforcer, MockBillingProvider, StripeBillingProvider, UsageTracker
from billing_platform.enforcer import shared_service
from billing_platform.errors import BillingProviderError, EntitlementEnforcementError, WebhookSignatureError
from billing_platform.usage.aggregator import UsageAggregationService, UsageInsert
from billing_platform.usage.models import UsageMessage
from billing_platform.usage.queue import SqsUsageQueue
from billing_platform.usage.repository import AggregateRepository
from tests.factories import stripe as sf
from tests.factories.stripe_server import fake_stripe_server

DOC = Path(__file__).resolve().parents[3] / "docs" / "billing-library-design.md"
TENANT = UUID("3d6f4b2a-9c1e-4f7a-8b5d-2e0c9a7f1b34")
NOW = datetime.now(UTC).replace(microsecond=0)
PERIOD = {"period_start": NOW - timedelta(days=3), "period_end": NOW + timedelta(days=27)}
# The document's placeholder `UUID("...")` is not a UUID Python can parse; it stands for this one.
PLACEHOLDER_UUID = 'UUID("...")'

# Blocks not run, and why. Each still parses (checked below).
NOT_RUN = {
    "Async/Await Patterns#1": "schematic: `create_subscription(...)` passes Ellipsis for its arguments",
    "Error Handling#1": "schematic (`...` arguments); its import line is run and the two errors checked",
    "Logging#1": "no library call (a logger.info with the application's own `tier`)",
    "Entitlement Caching#1": "no library call (a functools.lru_cache sketch)",
    "Debug Logging#1": "no library call (a logger name)",
}


@dataclass(frozen=True)
class Block:
    key: str  # "<heading>#<n>"
    line: int
    source: str


def document_blocks() -> list[Block]:
    """The ```python blocks of the document, keyed by the heading above them."""
    blocks: list[Block] = []
    heading, fence, start, body, counts = "", None, 0, [], {}  # type: ignore[var-annotated]
    for number, line in enumerate(DOC.read_text().splitlines(), 1):
        if line.startswith("```"):
            if fence is None:
                fence, start, body = line[3:].strip(), number, []
            else:
                if fence == "python":
                    counts[heading] = counts.get(heading, 0) + 1
                    blocks.append(Block(f"{heading}#{counts[heading]}", start, "\n".join(body)))
                fence = None
            continue
        if fence is None and line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif fence is not None:
            body.append(line)
    return blocks


BLOCKS = {b.key: b for b in document_blocks()}

# The only rewrite: the document's package names. Its PostgreSQL usage repository is, here, the usage
# queue the tracker sends to (`session` is given as its URL).
IMPORTS = {
    "infrastructure.billing": "from billing_platform import {names}",
    "infrastructure.persistence.billing_repository": (
        "from billing_platform.usage.queue import SqsUsageQueue as PostgreSQLUsageRecordRepository"
    ),
}


def adapted(source: str) -> str:
    lines = source.splitlines()
    for node in sorted(ast.parse(source).body, key=lambda n: -n.lineno):
        if isinstance(node, ast.ImportFrom) and node.module in IMPORTS:
            names = ", ".join(a.name if a.asname is None else f"{a.name} as {a.asname}" for a in node.names)
            lines[node.lineno - 1 : node.end_lineno] = [IMPORTS[node.module].format(names=names)]
    text = "\n".join(lines)
    assert "infrastructure" not in text
    return text


async def run(key: str, namespace: dict[str, Any], *, part: str | None = None) -> dict[str, Any]:
    """Execute block `key` (top-level await allowed) in `namespace`; returns the namespace."""
    source = BLOCKS[key].source
    if part is not None:  # "# After": the half of a before/after block that uses the library
        source = source[source.index(part) :]
    code = compile(adapted(source), f"<{DOC.name}:{key}>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)  # the document's own code
    if asyncio.iscoroutine(result):
        await result
    return namespace


# ------------------------------------------------------------------------------------------ context


@dataclass(frozen=True)
class Tenant:
    """The document's application tenant: `tenant.id` is a UUID."""

    id: UUID


@pytest.fixture
def world(moto_aws: dict[str, str]) -> Iterator[dict[str, Any]]:
    """moto tables and usage queue, a fake Stripe over HTTP (`STRIPE_API_BASE`), the tenant on the free plan."""
    from tests.conftest import reset_caches

    with fake_stripe_server() as (url, fake), pytest.MonkeyPatch.context() as env:
        env.setenv("STRIPE_API_BASE", url)
        env.setenv("STRIPE_SECRET_KEY", sf.API_KEY)
        env.setenv("STRIPE_WEBHOOK_SECRET", sf.WEBHOOK_SECRET)
        reset_caches()
        shared_service().apply_plan(str(TENANT), "free", **PERIOD, source_version=1)
        yield {"stripe": fake, "queue_url": moto_aws["USAGE_QUEUE_URL"]}
        reset_caches()


def queued_records(queue_url: str) -> list[dict[str, Any]]:
    """Every usage record on the queue (drained), in wire form."""
    sqs = boto3.client("sqs")
    records: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return records
        for message in got:
            body = UsageMessage.model_validate_json(message["Body"])
            records += [json.loads(r.wire_json()) for r in body.records]
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def used(resource: str) -> Decimal:
    return shared_service().check(str(TENANT), resource, Decimal(1)).used


def base(**extra: Any) -> dict[str, Any]:
    tenant = Tenant(TENANT)
    return {"tenant": tenant, "tenant_id": tenant.id, "Tenant": Tenant, **extra}


class Calls(list[str]):
    """The application's own work the document's endpoints call (`run_workflow`, `llm.generate`)."""

    async def run_workflow(self, workflow_id: UUID) -> dict[str, str]:
        self.append(f"workflow {workflow_id}")
        return {"workflow_id": str(workflow_id), "status": "done"}

    async def generate(self, prompt: str) -> str:
        self.append(f"llm {prompt}")
        return f"echo: {prompt}"


# ------------------------------------------------------------------------------------------ runners


async def provider_usage(world: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    stripe_side = StripeBillingProvider()  # the settings' key, the fake Stripe's base
    mock_side = MockBillingProvider(price_amounts={"price_123": 1_000, "price_456": 2_000})
    for label, provider in (("mock", mock_side), ("stripe", stripe_side)):
        ns = await run("Usage#1", base(provider=provider))
        customer_id, subscription = ns["customer_id"], ns["subscription"]
        assert isinstance(customer_id, str)
        assert customer_id.startswith("cus_")
        assert subscription["id"].startswith("sub_")
        assert (subscription["status"], subscription["customer_id"]) == ("trialing", customer_id)
        assert ns["updated"]["price_id"] == "price_456"
        assert ns["canceled"]["cancel_at_period_end"] is True
        assert (await provider.get_customer(customer_id))["tenant_id"] == str(TENANT)
        out[label] = {
            "customer_id": customer_id,
            'subscription["id"]': subscription["id"],
            "status": subscription["status"],
            "updated.price_id": ns["updated"]["price_id"],
            "canceled.cancel_at_period_end": ns["canceled"]["cancel_at_period_end"],
        }
    assert isinstance(ns["stripe_provider"], StripeBillingProvider)
    assert isinstance(ns["mock_provider"], MockBillingProvider)
    return out


async def stripe_integration(world: dict[str, Any]) -> dict[str, Any]:
    ns = await run("Stripe Integration#1", base())
    provider = ns["provider"]
    customer_id = await provider.create_customer(tenant_id=TENANT, email="ops@example.com")
    payload = json.dumps(sf.event("customer.created", sf.customer(customer_id), created=int(NOW.timestamp())))
    await provider.verify_webhook(payload, sf.sign(payload))
    with pytest.raises(WebhookSignatureError):
        await provider.verify_webhook(payload, sf.sign(payload, secret="whsec_other_0000"))
    return {"create_customer": customer_id, "verify_webhook(signed)": "accepted", "verify_webhook(other)": "rejected"}


async def basic_entitlement_check(world: dict[str, Any]) -> dict[str, Any]:
    ns = await run("Basic Entitlement Check#1", base(enforcer=EntitlementEnforcer()))
    check = ns["check"]
    assert check.allowed
    assert (check.tenant_id, check.used, check.remaining) == (str(TENANT), 1, 99)
    assert used("executions") == 1
    return {"check.allowed": check.allowed, "check.remaining": str(check.remaining)}


async def decorator_usage(world: dict[str, Any]) -> dict[str, Any]:
    calls = Calls()
    llm = type("Llm", (), {"generate": staticmethod(calls.generate)})
    ns = await run("Decorator Usage#1", base(UUID=UUID, Depends=Depends, run_workflow=calls.run_workflow, llm=llm))
    workflow = UUID(int=42)
    ran = await ns["execute_workflow"](tenant_id=TENANT, workflow_id=workflow, enforcer=EntitlementEnforcer())
    generated = await ns["process_with_llm"](tenant_id=TENANT, prompt="hello")  # the default enforcer
    assert (used("executions"), used("tokens")) == (1, 1000)
    shared_service().consume(str(TENANT), "tokens", Decimal(8_500))
    with pytest.raises(EntitlementEnforcementError):
        await ns["process_with_llm"](tenant_id=TENANT, prompt="too much")
    assert calls == [f"workflow {workflow}", "llm hello"]
    return {"execute_workflow": ran, "process_with_llm": generated, "then": "402 QuotaExceededError (500 tokens left)"}


async def fastapi_integration(world: dict[str, Any]) -> dict[str, Any]:
    calls = Calls()
    ns = await run("FastAPI Integration#1", base(UUID=UUID, Decimal=Decimal, run_workflow=calls.run_workflow))
    workflow = UUID(int=7)
    client = TestClient(ns["app"])
    ok = client.post(f"/workflows/{workflow}/execute", params={"tenant_id": str(TENANT)})
    assert (ok.status_code, ok.json()) == (200, {"workflow_id": str(workflow), "status": "done"})
    shared_service().consume(str(TENANT), "executions", Decimal(99))
    refused = client.post(f"/workflows/{workflow}/execute", params={"tenant_id": str(TENANT)})
    assert refused.status_code == 402
    assert used("executions") == 100
    return {"200": ok.json(), "402": refused.json()["detail"]["code"]}


async def basic_usage_tracking(world: dict[str, Any]) -> dict[str, Any]:
    ns = await run("Basic Usage Tracking#1", base(usage_repo=SqsUsageQueue(world["queue_url"])))
    records = queued_records(world["queue_url"])
    assert [(r["tenant_id"], r["resource_type"], r["quantity"]) for r in records] == [(str(TENANT), "executions", "1")]
    assert ns["tracker"].get_stats()["flushed"] == 1
    return {"on the queue": [(r["resource_type"], r["quantity"]) for r in records]}


async def context_manager_usage(world: dict[str, Any]) -> dict[str, Any]:
    workflow = UUID(int=9)
    # The block continues the previous one, whose imports (UsageTracker, Decimal) it relies on.
    context = base(
        usage_repo=SqsUsageQueue(world["queue_url"]), workflow_id=workflow, UsageTracker=UsageTracker, Decimal=Decimal
    )
    ns = await run("Context Manager Usage#1", context)
    records = queued_records(world["queue_url"])
    got = sorted(
        (r["resource_type"], r["quantity"], json.dumps(r.get("metadata", {}), sort_keys=True)) for r in records
    )
    assert got == [
        ("api_calls", "1", '{"endpoint": "/api/v1/workflows", "method": "POST"}'),
        ("executions", "1", json.dumps({"workflow_id": str(workflow)})),
        ("storage_mb", "10.5", '{"storage_type": "checkpoint"}'),
        ("tokens", "1500", '{"model": "gpt-4"}'),
    ]
    assert ns["tracker"].get_stats()["buffered"] == 0
    return {"on the queue at exit": [(r, q) for r, q, _ in got]}


async def manual_flush(world: dict[str, Any]) -> dict[str, Any]:
    tracker = UsageTracker(SqsUsageQueue(world["queue_url"]))
    for n in range(3):
        await tracker.track(TENANT, "api_calls", n + 1)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        ns = await run("Manual Flush#1", base(tracker=tracker))
    assert ns["flushed_count"] == 3
    assert (ns["stats"]["tracked"], ns["stats"]["flushed"]) == (3, 3)
    assert len(queued_records(world["queue_url"])) == 3
    return {"printed": printed.getvalue().strip().splitlines()}


async def usage_aggregation(world: dict[str, Any]) -> dict[str, Any]:
    hour = NOW.replace(minute=0, second=0)
    seeded = [(str(TENANT), "tokens", 1_500, hour - timedelta(days=2)), (str(TENANT), "tokens", 500, hour)]
    seeded += [(f"t_other{n}", "executions", 10 * n, hour - timedelta(days=n)) for n in (1, 2, 3)]
    seeded += [(str(TENANT), "executions", 25, hour - timedelta(days=10))]  # outside the 7 days
    inserts = [
        UsageInsert(f"{n + 1:021d}", f"usage#{n}", tenant, resource, Decimal(q), at)
        for n, (tenant, resource, q, at) in enumerate(seeded)
    ]
    assert UsageAggregationService(repository=AggregateRepository()).apply(inserts).applied == len(inserts)
    ns = await run("Usage Aggregation#1", base(usage_repo=AggregateRepository()))
    trends, top = ns["trends"], ns["top_consumers"]
    assert (len(trends.points), trends.total) == (30, 2_000)
    assert [(t.tenant_id, t.quantity) for t in top] == [("t_other3", 30), ("t_other2", 20), ("t_other1", 10)]
    return {"trends.total": str(trends.total), "top_consumers": [t.to_dict() for t in top]}


async def application_setup(world: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for environment, expected in (("development", MockBillingProvider), ("production", StripeBillingProvider)):
        os.environ["ENVIRONMENT"] = environment
        try:
            ns = await run("Application Setup#1", base(os=os, session=world["queue_url"]))
        finally:
            os.environ["ENVIRONMENT"] = "test"
        assert isinstance(ns["billing_provider"], expected)
        tracker = ns["usage_tracker"]
        with TestClient(ns["app"]):  # startup: tracker.start(); shutdown: await tracker.stop()
            assert tracker.sync._thread is not None  # the background flush runs
            tracker.sync.track(TENANT, "api_calls", 2)
        assert tracker.sync._thread is None
        records = queued_records(world["queue_url"])
        assert [(r["resource_type"], r["quantity"]) for r in records] == [("api_calls", "2")]
        out[environment] = {
            "billing_provider": type(ns["billing_provider"]).__name__,
            "flushed at shutdown": tracker.get_stats()["flushed"],
        }
    return out


async def unit_tests(world: dict[str, Any]) -> dict[str, Any]:
    key = "Unit Tests#1"
    original = BLOCKS[key].source
    assert PLACEHOLDER_UUID in original
    BLOCKS[key] = Block(key, BLOCKS[key].line, original.replace(PLACEHOLDER_UUID, f'UUID("{TENANT}")'))
    try:
        ns = await run(key, base(UUID=UUID))
    finally:
        BLOCKS[key] = Block(key, BLOCKS[key].line, original)
    await ns["test_mock_provider_create_customer"]()
    return {"test_mock_provider_create_customer": "passed"}


async def integration_tests(world: dict[str, Any]) -> dict[str, Any]:
    # A test module's own imports, which the block leaves out.
    context = base(EntitlementEnforcer=EntitlementEnforcer, pytest=pytest, Decimal=Decimal)
    ns = await run("Integration Tests#1", context)
    await ns["test_entitlement_enforcer_check_and_record"](EntitlementEnforcer(), Tenant(TENANT))
    assert used("executions") == 1
    return {"test_entitlement_enforcer_check_and_record": "passed"}


async def migration_stripe(world: dict[str, Any]) -> dict[str, Any]:
    ns = await run("From Direct Stripe API#1", base(), part="# After")
    sent = world["stripe"].requests[-1]
    assert ns["customer_id"].startswith("cus_")
    assert sent.headers["Authorization"] == "Bearer sk_..."  # the key passed, not the environment's
    return {"customer_id": ns["customer_id"], "Authorization": sent.headers["Authorization"]}


async def migration_tracking(world: dict[str, Any]) -> dict[str, Any]:
    ns = await run("From Manual Usage Tracking#1", base(usage_repo=SqsUsageQueue(world["queue_url"])), part="# After")
    tracker = ns["tracker"]
    assert tracker.get_stats()["buffered"] == 1
    assert await tracker.flush() == 1
    records = queued_records(world["queue_url"])
    assert [(r["resource_type"], r["quantity"]) for r in records] == [("executions", "1")]
    return {"tracked": tracker.get_stats()["tracked"], "flush()": 1}


async def error_handling(world: dict[str, Any]) -> dict[str, Any]:
    tree = ast.parse(BLOCKS["Error Handling#1"].source)
    imports = "\n".join(ast.unparse(n) for n in tree.body if isinstance(n, ast.ImportFrom))
    ns: dict[str, Any] = {}
    exec(compile(adapted(imports), "<imports>", "exec"), ns)
    assert (ns["BillingProviderError"], ns["EntitlementEnforcementError"]) == (
        BillingProviderError,
        EntitlementEnforcementError,
    )
    provider = StripeBillingProvider()
    with pytest.raises(ns["BillingProviderError"]):
        await provider.create_subscription(customer_id="cus_missing", price_id="price_123")
    return {"imports": "ok", "create_subscription(unknown customer)": "BillingProviderError (404)"}


RUNNERS: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "Usage#1": provider_usage,
    "Stripe Integration#1": stripe_integration,
    "Basic Entitlement Check#1": basic_entitlement_check,
    "Decorator Usage#1": decorator_usage,
    "FastAPI Integration#1": fastapi_integration,
    "Basic Usage Tracking#1": basic_usage_tracking,
    "Context Manager Usage#1": context_manager_usage,
    "Manual Flush#1": manual_flush,
    "Usage Aggregation#1": usage_aggregation,
    "Application Setup#1": application_setup,
    "Unit Tests#1": unit_tests,
    "Integration Tests#1": integration_tests,
    "From Direct Stripe API#1": migration_stripe,
    "From Manual Usage Tracking#1": migration_tracking,
}
EXTRA = {"Error Handling#1": error_handling}


def test_every_block_is_run_or_explained() -> None:
    assert set(BLOCKS) == set(RUNNERS) | set(NOT_RUN)
    assert not set(RUNNERS) & set(NOT_RUN)
    for block in BLOCKS.values():
        ast.parse(block.source)  # every block is at least valid Python


@pytest.mark.parametrize("key", [*RUNNERS, *EXTRA])
def test_documented_snippet_runs(key: str, world: dict[str, Any]) -> None:
    returned = asyncio.run({**RUNNERS, **EXTRA}[key](world))
    print(f"\nSNIPPET {key} (line {BLOCKS[key].line}): {json.dumps(returned, default=str)}")
