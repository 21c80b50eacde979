"""Tracing: Lambda's active tracing on every function; the X-Ray SDK (Powertools' Tracer) off by default, so
no function pays its ~100 ms at cold start, and back on with `-c xraySdk=true`."""

from __future__ import annotations

from typing import Any

import pytest

from billing_platform import resources
from tests.infra.cfn import Synthesized, synth_with_context

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]


def _functions(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]


def test_every_function_is_traced_by_lambda_and_loads_no_xray_sdk_by_default(synthesized: Synthesized) -> None:
    functions = [synthesized.resources[synthesized.function_id(spec)]["Properties"] for spec in resources.FUNCTIONS]
    assert len(functions) == len(resources.FUNCTIONS)
    for fn in functions:
        assert fn["TracingConfig"] == {"Mode": "Active"}
        assert fn["Environment"]["Variables"][resources.TRACE_DISABLED_ENV] == "true"


@pytest.fixture(scope="module")
def with_xray_sdk(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The template of `cdk synth -c xraySdk=true` (cdk-nag runs on it too)."""
    return synth_with_context(tmp_path_factory.mktemp("cdk-xray-sdk"), xraySdk="true")


def test_xray_sdk_true_lets_powertools_trace_in_every_function(with_xray_sdk: dict[str, Any]) -> None:
    functions = _functions(with_xray_sdk)
    assert len(functions) == len(resources.FUNCTIONS)
    for fn in functions:
        assert fn["TracingConfig"] == {"Mode": "Active"}
        variables = fn["Environment"]["Variables"]
        assert resources.TRACE_DISABLED_ENV not in variables
        assert variables["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false"
