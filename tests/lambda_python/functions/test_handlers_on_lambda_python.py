"""The Python Lambda runs is the Python the handlers are tested on: every function's handler imported by
the Lambda runtime's interpreter (python3.13) from the built dependency layers, the core library layer
and the function folder only (a fresh sys.path: `-I -S`, no dev venv), and invoked once with a canned
event against the local emulators (DynamoDB Local, moto) of an in-process local stack.

Needs the layers built (`make layers`; `make lambda-python` and `make test` build them first) and a
python3.13 (pyenv's, on these machines)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from billing_platform import resources
from billing_platform.resources import DependencyLayer, FunctionSpec
from billing_platform.usage.repository import raw_key
from infra.dependency_layers import LAMBDA_PYTHON_VERSION
from local_stack.lambda_events import scheduled_event
from tests.factories import stripe as sf
from tests.factories.apigw import api_event
from tests.factories.authorizer import authorizer_event, bearer
from tests.factories.billing_events import counter_write
from tests.factories.cold_start import built_layer_path, lambda_python
from tests.factories.local_stack_process import in_process
from tests.factories.sqs import sqs_event
from tests.factories.streams import insert, stream_event

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("lambda_python")]

ROOT = Path(__file__).resolve().parents[3]
RUNNER = Path(__file__).with_name("runner.py")
TENANT = "t_lambda_python"


def layer_path(spec: FunctionSpec) -> list[str]:
    """What Lambda puts on sys.path after /var/task: the layers' python/ folders (dependency layers built
    by infra.dependency_layers, then the core library layer)."""
    paths = built_layer_path(spec)
    assert paths is not None, f"a layer of {spec.name} is not built for this version: run `make layers`"
    return paths


@pytest.fixture(scope="module")
def stack_env() -> Iterator[dict[str, str]]:
    from local_stack.stack import StackOptions

    with in_process(StackOptions(pollers=False, hooks=False, warm=False, log_level="WARNING")) as stack:
        yield dict(stack.env)


def run(python: str, spec: FunctionSpec, event: dict[str, Any], env: dict[str, str], tmp: Path) -> dict[str, Any]:
    output = tmp / f"{spec.name}.json"
    child_env = {**env, "PATH": os.environ.get("PATH", ""), "LAMBDA_CHECK_OUTPUT": str(output)}
    if DependencyLayer.STRIPE in spec.dependency_layers:
        # No handler imports the SDK at cold start; its first Stripe call does, from this layer.
        child_env["LAMBDA_CHECK_ALSO_IMPORT"] = "stripe"
    command = [python, "-I", "-S", str(RUNNER), str(ROOT / "functions" / spec.name), *layer_path(spec)]
    done = subprocess.run(
        command, input=json.dumps(event), env=child_env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, f"{spec.name}: exit {done.returncode}\n{done.stderr[-3000:]}"
    assert output.exists(), f"{spec.name}: no result\n{done.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(output.read_text())
    assert "error" not in result, f"{spec.name}: {result['error']}\n{result.get('traceback')}\n{done.stdout[-2000:]}"
    return result


def webhook_event(secret: str) -> dict[str, Any]:
    customer = sf.customer(tenant_id=TENANT)
    return sf.webhook_request(sf.event("customer.created", customer, created=int(time.time())), secret=secret)


def scheduled(event_id: str) -> dict[str, Any]:
    return scheduled_event(
        rule_arn="arn:aws:events:us-east-1:000000000000:rule/check",
        region="us-east-1",
        account="000000000000",
        event_id=event_id,
        time=datetime.now(UTC),
    )


def usage_record_insert() -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    image = {
        "record_id": "use_lambda_python",
        "tenant_id": TENANT,
        "resource_type": "tokens",
        "quantity": Decimal(3),
        "ts": now.isoformat(),
        "expires_at": 0,
    }
    return insert(raw_key(TENANT, "tokens", "use_lambda_python"), image)


def test_every_handler_imports_and_answers_on_the_lambda_runtime_python(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    python = lambda_python()
    now = datetime.now(UTC).isoformat()
    created = run(
        python,
        resources.API_KEYS,
        api_event("POST", f"/v1/tenants/{TENANT}/api-keys", {"name": "lambda python"}, operator=True),
        stack_env,
        tmp_path,
    )
    assert created["result"]["statusCode"] == 201, created["result"]
    key = json.loads(created["result"]["body"])["secret"]

    record = {"resource_type": "tokens", "quantity": 2, "timestamp": now}
    message = {"v": 1, "records": [{**record, "record_id": "use_lp_1", "tenant_id": TENANT, "quantity": "2"}]}
    cases: list[tuple[FunctionSpec, dict[str, Any], Any]] = [
        (resources.HEALTH, api_event("GET", "/health"), 200),
        (resources.AUTHORIZER, authorizer_event("POST", "/v1/usage", authorization=bearer(key)), "Allow"),
        (
            resources.ENTITLEMENTS,
            api_event(
                "POST",
                "/v1/entitlements/check",
                {"tenant_id": TENANT, "resource_type": "api_calls", "quantity": 1},
                tenant_id=TENANT,
            ),
            200,
        ),
        (
            resources.RESERVATIONS,  # a well-formed id nobody holds: the handler's lookup on DynamoDB Local
            api_event("GET", f"/v1/entitlements/reservations/rsv_{'0' * 32}", tenant_id=TENANT),
            404,
        ),
        (resources.RESERVATION_SWEEPER, scheduled("sweep-run"), None),
        (resources.USAGE_INGEST, api_event("POST", "/v1/usage", {"records": [record]}, tenant_id=TENANT), 202),
        (
            resources.USAGE_QUERY,
            api_event("GET", f"/v1/tenants/{TENANT}/usage", query={"resource_type": "tokens"}, tenant_id=TENANT),
            200,
        ),
        (
            resources.SUBSCRIPTIONS,
            api_event("POST", "/v1/customers", {"tenant_id": TENANT, "email": "py@example.com"}, operator=True),
            201,
        ),
        (resources.STRIPE_WEBHOOK, webhook_event(stack_env["STRIPE_WEBHOOK_SECRET"]), 200),
        (resources.USAGE_CONSUMER, sqs_event(message), []),
        (resources.USAGE_AGGREGATOR, stream_event(usage_record_insert()), []),
        (resources.METER_REPORTER, scheduled("meter-run"), None),
        # A counter write under every threshold: the handler's parsing and catalog lookup, no publish.
        (resources.QUOTA_EVENTS, stream_event(counter_write(TENANT, "api_calls", 0, 1)), []),
        (resources.EVENT_SWEEPER, scheduled("event-sweep-run"), None),
        (
            resources.WEBHOOK_ENDPOINTS,
            api_event("GET", f"/v1/tenants/{TENANT}/webhook-endpoints", operator=True),
            200,
        ),
        (resources.ENTITIES, api_event("GET", f"/v1/tenants/{TENANT}/entities", operator=True), 200),
        (resources.PORTAL, api_event("GET", "/portal"), 200),
        (resources.OPERATIONS, api_event("GET", "/v1/ops/freshness", operator=True), 200),
        (
            resources.WEBHOOK_DELIVERY,  # an event for a tenant with no endpoint: delivered to nobody, done
            sqs_event(
                {
                    "detail-type": resources.QUOTA_THRESHOLD_CROSSED,
                    "detail": {"event_id": "evt_lambda_python", "tenant_id": TENANT, "occurred_at": now},
                }
            ),
            [],
        ),
    ]
    assert {spec.name for spec, _, _ in cases} | {resources.API_KEYS.name} == {f.name for f in resources.FUNCTIONS}

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda case: run(python, case[0], case[1], stack_env, tmp_path), cases))

    for (spec, _, expected), outcome in zip(cases, results, strict=True):
        assert tuple(outcome["python"][:2]) == tuple(int(p) for p in LAMBDA_PYTHON_VERSION.split(".")), spec.name
        for module, origin in outcome["origins"].items():
            assert origin is not None, (spec.name, module)
            assert not origin.startswith(sys.prefix), (spec.name, module, origin)
            assert origin.startswith((str(ROOT / "build" / "layers"), str(ROOT / "layers")))
        answer = outcome["result"]
        if isinstance(expected, int):
            assert answer["statusCode"] == expected, (spec.name, answer)
        elif expected == "Allow":
            assert answer["policyDocument"]["Statement"][0]["Effect"] == "Allow", answer
            assert answer["context"]["tenant_id"] == TENANT
        elif expected == []:
            assert answer["batchItemFailures"] == [], (spec.name, answer)
        else:
            assert isinstance(answer, dict), (spec.name, answer)
    origins = {m for outcome in results for m in outcome["origins"]}
    # botocore, not boto3: the layer makes its clients from a botocore session (a cheaper cold start).
    assert {"botocore", "pydantic_core", "aws_lambda_powertools", "billing_platform", "stripe"} <= origins
    assert DependencyLayer.STRIPE in resources.STRIPE_WEBHOOK.dependency_layers
