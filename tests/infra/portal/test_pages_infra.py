"""The pages and the console's reads in the synthesized stack: the portal function holds no data access
at all and ships the bundled pages in its asset; the operations function reads depths and metrics only
(no receive, send or delete; no table write); the portal routes are public GETs on the API itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from billing_platform import resources
from tests.infra.cfn import Synthesized, as_list, references, statements_of_role

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    return {action for s in statements for action in as_list(s["Action"])}


def test_the_portal_function_can_reach_no_table_queue_or_secret(synthesized: Synthesized) -> None:
    actions = _actions(statements_of_role(synthesized, synthesized.role_id(resources.PORTAL)))
    services = {action.split(":", 1)[0] for action in actions}
    assert services <= {"logs", "xray"}, actions


def test_the_portal_function_ships_the_bundled_pages(synthesized: Synthesized) -> None:
    # The staged asset folder of the portal function: the one holding its handler and the bundle.
    staged = [p.parent.parent for p in Path(synthesized.app.outdir).glob("asset.*/static/portal.html")]
    assert len(staged) == 1, staged
    assert "StaticPages" in (staged[0] / "handler.py").read_text()
    for name in ("portal.html", "console.html", "portal.js", "console.js", "billing-usage.js", "portal.css"):
        assert (staged[0] / "static" / name).is_file(), name


def test_the_operations_function_reads_depths_and_metrics_and_writes_nothing(synthesized: Synthesized) -> None:
    statements = statements_of_role(synthesized, synthesized.role_id(resources.OPERATIONS))
    sqs = [s for s in statements if any(a.startswith("sqs:") for a in as_list(s["Action"]))]
    assert _actions(sqs) == {"sqs:GetQueueAttributes"}
    watched = {ref for s in sqs for ref in references(s["Resource"])}
    expected = {
        synthesized.queue_id(resources.USAGE_QUEUE),
        synthesized.dlq_id(resources.USAGE_QUEUE),
        synthesized.queue_id(resources.WEBHOOK_QUEUE),
        synthesized.dlq_id(resources.WEBHOOK_QUEUE),
    }
    assert {logical_id for logical_id, _ in watched} == expected
    metrics = [s for s in statements if any(a.startswith("cloudwatch:") for a in as_list(s["Action"]))]
    # The metrics action shares the Resource "*" statement with X-Ray's; its own are only the read.
    assert {a for a in _actions(metrics) if a.startswith("cloudwatch:")} == {"cloudwatch:GetMetricStatistics"}
    dynamodb = _actions([s for s in statements if any(a.startswith("dynamodb:") for a in as_list(s["Action"]))])
    assert dynamodb
    assert not {a for a in dynamodb if any(w in a for w in ("Put", "Update", "Delete", "Write"))}, dynamodb


def test_the_page_routes_are_public_gets_of_the_api(synthesized: Synthesized) -> None:
    methods = synthesized.of_type("AWS::ApiGateway::Method")
    paths = {
        resource["Properties"].get("PathPart") for resource in synthesized.of_type("AWS::ApiGateway::Resource").values()
    }
    assert {"portal", "console", "assets", "{asset}"} <= paths
    public_gets = [
        m
        for m in methods.values()
        if m["Properties"]["HttpMethod"] == "GET" and m["Properties"]["AuthorizationType"] == "NONE"
    ]
    targets = {ref for m in public_gets for ref in references(m["Properties"].get("Integration", {}))}
    assert synthesized.function_id(resources.PORTAL) in {logical_id for logical_id, _ in targets}
