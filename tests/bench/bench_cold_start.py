"""Cold starts and requests per operation, each against its bare-boto3 yardstick measured in the same run.

1. Cold import of every function's handler module (fresh interpreter, the stack's environment, as Lambda
   imports `handler.handler`) against `import boto3; boto3.client("dynamodb")`. Goal: <= 1.3x.
2. First invocation of the entitlement function (import + one consume through the real handler against
   DynamoDB Local) against a bare boto3 handler making the same conditional UpdateItem. Goal: <= 1.3x.
3. DynamoDB requests per entitlement operation, counted on the wire with botocore hooks.

Medians of fresh interpreters, rounds interleaved. CPU time (`time.process_time`) is the cost itself and
holds steady on a shared machine; wall time is printed beside it and moves with the machine's load.
Run: `.venv/bin/python -m tests.bench bench_cold_start` (REPEATS=n for more rounds).
"""

from __future__ import annotations

import json
import os
import statistics
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from botocore.config import Config

from billing_platform import resources
from billing_platform.catalog.models import load_catalog
from billing_platform.entitlements.models import add_months
from billing_platform.entitlements.service import EntitlementService
from billing_platform.resources import FunctionSpec
from billing_platform.settings import Settings
from local_stack.dynamodb_local import DynamoDBLocal
from local_stack.provision import create_tables
from tests.factories import catalogs
from tests.factories.apigw import api_event
from tests.factories.cold_start import (
    BARE_BOTO3_IMPORT,
    Job,
    built_layer_path,
    import_self_seconds,
    lambda_import_cpu_seconds,
    lambda_python,
    medians,
    run_fresh,
)
from tests.factories.services import entitlement_service

REPEATS = int(os.environ.get("REPEATS", "5"))
GOAL = 1.3
BARE = "import boto3 + client"

# The entitlement function's first request: its handler on a consume event (tenant key caller).
HANDLER_FIRST_INVOCATION = """
import handler
class _Context:
    function_name = "entitlements"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:entitlements"
    aws_request_id = "bench"
    def get_remaining_time_in_millis(self): return 10_000
_answer = handler.handler(json.loads(os.environ["BENCH_EVENT"]), _Context())
assert _answer["statusCode"] == 200, _answer
"""
# The same first invocation in three parts: the handler's import, its first AWS client, the rest of the request.
HANDLER_FIRST_INVOCATION_PARTS = (
    "import json, os, time\n_t0 = time.process_time()\nimport handler\n_t1 = time.process_time()\n"
    "from billing_platform import clients\nclients.dynamodb()\n_t2 = time.process_time()\n"
    + HANDLER_FIRST_INVOCATION.replace("import handler\n", "", 1)
    + "\nprint(_t1 - _t0, _t2 - _t1, time.process_time() - _t2)"
)
# A bare boto3 function doing the same: client at import, one conditional UpdateItem per request.
BARE_FIRST_INVOCATION = """
import boto3
_client = boto3.client("dynamodb")
def _handler(event, context):
    return _client.update_item(
        TableName=os.environ["BILLING_TABLE_NAME"],
        Key={"pk": {"S": "BARE#counter"}, "sk": {"S": "COUNTER"}},
        UpdateExpression="SET #rem = #rem - :q, #used = #used + :q",
        ConditionExpression="#rem >= :q AND #pe > :now",
        ExpressionAttributeNames={"#rem": "remaining", "#used": "used", "#pe": "period_end"},
        ExpressionAttributeValues={":q": {"N": "1"}, ":now": {"N": str(int(time.time()))}},
        ReturnValues="ALL_NEW",
    )
_handler({}, None)
"""


def _rows(found: dict[str, tuple[float, float]], base_label: str) -> None:
    base_wall, base_cpu = found[base_label]
    for label, (wall, cpu) in found.items():
        ratio = cpu / base_cpu
        mark = "" if label == base_label else ("  within goal" if ratio <= GOAL else "  over goal")
        print(
            f"  {label:<26} {cpu * 1000:6.0f} ms {ratio:5.2f}x"
            f"   wall {wall * 1000:6.0f} ms {wall / base_wall:5.2f}x{mark}",
            flush=True,
        )


# Where an import's time goes, by owner (the first matching prefix wins).
IMPORT_GROUPS = (
    ("handler module (models, routes)", ("handler",)),
    ("billing_platform (the layer)", ("billing_platform",)),
    ("Powertools event handler + OpenAPI params", ("aws_lambda_powertools.event_handler",)),
    ("Powertools Logger/Metrics/utilities", ("aws_lambda_powertools",)),
    (
        "pydantic + pydantic_core + typing helpers",
        ("pydantic", "annotated_types", "typing_extensions", "typing_inspection"),
    ),
    ("botocore + urllib3 + dateutil + jmespath", ("botocore", "urllib3", "dateutil", "jmespath", "six")),
    ("stripe + requests", ("stripe", "requests", "charset_normalizer", "idna", "certifi")),
)


def _group(module: str) -> str:
    for label, prefixes in IMPORT_GROUPS:
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return label
    return "standard library (pulled in by the above)"


def import_breakdown(spec: FunctionSpec, repeats: int = 3) -> None:
    """Self time of each module's import, summed by owner (min over `repeats` runs per module)."""
    best: dict[str, float] = {}
    for _ in range(repeats):
        for module, seconds in import_self_seconds(spec).items():
            best[module] = min(best.get(module, seconds), seconds)
    groups: dict[str, float] = {}
    for module, seconds in best.items():
        groups[_group(module)] = groups.get(_group(module), 0.0) + seconds
    top = sorted(best.items(), key=lambda item: -item[1])[:8]
    print(
        f"  {spec.name}: -X importtime self time {sum(best.values()) * 1000:.0f} ms (min of {repeats} runs per module)"
    )
    for label, seconds in sorted(groups.items(), key=lambda item: -item[1]):
        print(f"    {label:<45} {seconds * 1000:6.1f} ms")
    print("    largest modules: " + ", ".join(f"{m} {s * 1000:.1f}" for m, s in top))


def cold_imports() -> None:
    jobs: list[Job] = [(BARE, resources.HEALTH, BARE_BOTO3_IMPORT, {})]
    jobs += [(spec.name, spec, "import handler", {}) for spec in resources.FUNCTIONS]
    found = medians(jobs, REPEATS)
    print(f"cold import, median of {REPEATS} fresh interpreters (CPU, ratio to bare; wall, ratio); goal <= {GOAL}x")
    _rows(found, BARE)
    # Where the time goes: the entitlement function (the first-invocation case) and any function over goal.
    base = found[BARE][1]
    over = [spec for spec in resources.FUNCTIONS if found[spec.name][1] / base > GOAL]
    print("\nwhere a cold import goes (bare boto3 + client, for scale: " + f"{base * 1000:.0f} ms CPU)")
    for spec in [resources.ENTITLEMENTS, *(s for s in over if s != resources.ENTITLEMENTS)]:
        import_breakdown(spec)


def cold_imports_as_lambda() -> None:
    """The same table as Lambda imports a handler: Lambda's Python (-I -S) from the built layers."""
    if any(built_layer_path(spec) is None for spec in resources.FUNCTIONS):
        print("\ncold import as Lambda does it: skipped, the layers are not built (make layers)")
        return
    python = lambda_python()
    jobs = [(BARE, resources.HEALTH, BARE_BOTO3_IMPORT)] + [(s.name, s, "import handler") for s in resources.FUNCTIONS]
    for _label, spec, statement in jobs:  # compiles every module once (bytecode cached): not counted
        lambda_import_cpu_seconds(python, spec, statement)
    cpus: dict[str, list[float]] = {label: [] for label, *_ in jobs}
    for _ in range(REPEATS):
        for label, spec, statement in jobs:
            cpus[label].append(lambda_import_cpu_seconds(python, spec, statement))
    found = {label: statistics.median(values) for label, values in cpus.items()}
    print(f"\ncold import as Lambda does it ({python} -I -S, built layers), median CPU of {REPEATS}; goal <= {GOAL}x")
    for label, cpu in found.items():
        ratio = cpu / found[BARE]
        mark = "" if label == BARE else ("  within goal" if ratio <= GOAL else "  over goal")
        print(f"  {label:<26} {cpu * 1000:6.0f} ms {ratio:5.2f}x{mark}", flush=True)


def first_invocation(endpoint_url: str, table: str) -> None:
    environ = {
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint_url,
        resources.BILLING_TABLE.env_var: table,
        "BENCH_EVENT": json.dumps(
            api_event(
                "POST",
                "/v1/entitlements/consume",
                {"tenant_id": "t_bench", "resource_type": "executions", "quantity": 1},
                tenant_id="t_bench",
            )
        ),
    }
    preamble = "import json, os, time\n"
    jobs: list[Job] = [
        ("bare boto3 handler", resources.ENTITLEMENTS, preamble + BARE_FIRST_INVOCATION, environ),
        ("entitlements handler", resources.ENTITLEMENTS, preamble + HANDLER_FIRST_INVOCATION, environ),
    ]
    medians(jobs, 1)  # compiles and warms the disk cache; not counted
    found = medians(jobs, REPEATS)
    print("\nfirst invocation: import + one conditional UpdateItem on DynamoDB Local (CPU, ratio; wall, ratio)")
    _rows(found, "bare boto3 handler")
    parts = [
        [float(x) for x in run_fresh(resources.ENTITLEMENTS, HANDLER_FIRST_INVOCATION_PARTS, environ=environ).split()]
        for _ in range(REPEATS)
    ]
    imported, client, request = (statistics.median(p[i] for p in parts) * 1000 for i in range(3))
    print(
        f"  entitlements handler, in parts (CPU): import {imported:.0f} ms, first DynamoDB client {client:.0f} ms,"
        f" the rest of the first request (routing, validation, service, UpdateItem, logs, metrics) {request:.0f} ms"
    )


class RequestCounter:
    """DynamoDB requests as sent on the wire (retries included), per operation."""

    def __init__(self, client: Any) -> None:
        self.ops: Counter[str] = Counter()
        self._lock = threading.Lock()
        client.meta.events.register("before-send.dynamodb.*", self._sent)

    def _sent(self, request: Any, **_: Any) -> None:
        with self._lock:
            self.ops[request.headers["X-Amz-Target"].decode().split(".")[-1]] += 1

    def measure(self, calls: int, call: Callable[[int], object]) -> str:
        self.ops.clear()
        for index in range(calls):
            call(index)
        ops = ", ".join(f"{name} {count}" for name, count in sorted(self.ops.items()))
        return f"{sum(self.ops.values()) / calls:5.2f}  ({ops})"


def requests_per_operation(client: Any, table: str) -> None:
    settings = Settings(billing_table_name=table)
    catalog = catalogs.catalog(
        {
            "one": catalogs.plan(catalogs.quota("1000000"), name="One"),
            "eight": catalogs.plan(catalogs.quota("1000000"), name="Eight", shards=8),
            "tiny": catalogs.plan(catalogs.quota("1"), name="Tiny"),
        },
        version="bench",
    )
    counter = RequestCounter(client)

    def container(seed: int = 1) -> EntitlementService:
        return entitlement_service(catalog, client=client, settings=settings, seed=seed)

    warm = container()
    start = datetime.now(UTC) - timedelta(days=1)
    for tenant, plan in (("one", "one"), ("eight", "eight"), ("tiny", "tiny")):
        warm.apply_plan(tenant, plan, period_start=start, period_end=add_months(start, 1), source_version=1)
        warm.consume(tenant, "executions")  # the container has seen the counter and the layout
    one = Decimal(1)
    rows: list[tuple[str, Callable[[int], object]]] = [
        ("hot path, one counter", lambda i: warm.consume("one", "executions", one)),
        ("hot path, 8 shards", lambda i: warm.consume("eight", "executions", one)),
        ("denied (quota exhausted)", lambda i: warm.consume("tiny", "executions", one)),
        (
            "idempotent consume, warm container",
            lambda i: warm.consume("one", "executions", one, idempotency_key=f"w{i}"),
        ),
        (
            "idempotent consume, cold container",
            lambda i: container(i).consume("one", "executions", one, idempotency_key=f"c{i}"),
        ),
        ("its retry, warm container", lambda i: warm.consume("one", "executions", one, idempotency_key=f"c{i}")),
        (
            "its retry, cold container",
            lambda i: container(i).consume("one", "executions", one, idempotency_key=f"w{i}"),
        ),
    ]
    print("\nDynamoDB requests per operation (one thread; bench_entitlements has them under contention)")
    for label, call in rows:
        print(f"  {label:<40} {counter.measure(50, call)}", flush=True)
    print("  usage ingest -> aggregates: see bench_usage (requests per event)")


def _seed_first_invocation(client: Any, table: str) -> None:
    """The tenant of the first-invocation event on a large plan of the shipped catalog, and the bare
    handler's counter item."""
    settings = Settings(billing_table_name=table)
    service = entitlement_service(load_catalog(), client=client, settings=settings)
    start = datetime.now(UTC) - timedelta(days=1)
    service.apply_plan("t_bench", "pro", period_start=start, period_end=add_months(start, 1), source_version=1)
    client.put_item(
        TableName=table,
        Item={
            "pk": {"S": "BARE#counter"},
            "sk": {"S": "COUNTER"},
            "remaining": {"N": "1000000"},
            "used": {"N": "0"},
            "period_end": {"N": str(int((start + timedelta(days=30)).timestamp()))},
        },
    )


def main() -> None:
    cold_imports()
    cold_imports_as_lambda()
    with DynamoDBLocal() as ddb:
        client = ddb.client(
            "dynamodb",
            Config(retries={"mode": "standard", "max_attempts": 5}),
        )
        names: Mapping[str, str] = create_tables(client, prefix="cold-")
        table = names[resources.BILLING_TABLE.env_var]
        _seed_first_invocation(client, table)
        first_invocation(ddb.endpoint_url, table)
        requests_per_operation(client, table)


if __name__ == "__main__":
    main()
