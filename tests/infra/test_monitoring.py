"""Alarms on dead-letter depth, function errors and throttles, all routed to the alarm topic."""

from __future__ import annotations

from typing import Any

import pytest

from billing_platform import resources
from billing_platform.resources import FunctionSpec
from tests.infra.cfn import Synthesized, function_specs, references

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]


def _alarms(synthesized: Synthesized) -> list[dict[str, Any]]:
    return [a["Properties"] for a in synthesized.of_type("AWS::CloudWatch::Alarm").values()]


def _alarms_on(synthesized: Synthesized, namespace: str, metric: str, dimension_target: str) -> list[dict[str, Any]]:
    return [
        alarm
        for alarm in _alarms(synthesized)
        if alarm.get("Namespace") == namespace
        and alarm.get("MetricName") == metric
        and any(target == dimension_target for target, _ in references(alarm.get("Dimensions", [])))
    ]


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
@pytest.mark.parametrize("spec", function_specs())
def test_every_function_alarms_on(synthesized: Synthesized, spec: FunctionSpec, metric: str) -> None:
    alarms = _alarms_on(synthesized, "AWS/Lambda", metric, synthesized.function_id(spec))
    assert len(alarms) == 1
    assert alarms[0]["Threshold"] >= 1
    assert alarms[0]["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_dead_letter_queues_alarm_on_their_first_message(synthesized: Synthesized) -> None:
    dead_letters = [synthesized.dlq_id(resources.USAGE_QUEUE)] + [
        synthesized.logical_id(q) for q in synthesized.stack.usage_pipeline.stream_failures.values()
    ]
    for queue_id in dead_letters:
        alarms = _alarms_on(synthesized, "AWS/SQS", "ApproximateNumberOfMessagesVisible", queue_id)
        assert len(alarms) == 1, queue_id
        assert alarms[0]["Threshold"] == 1


def test_every_alarm_notifies_the_alarm_topic(synthesized: Synthesized) -> None:
    (topic_id,) = synthesized.of_type("AWS::SNS::Topic")
    alarms = _alarms(synthesized)
    assert alarms
    for alarm in alarms:
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]
