"""SQS and DynamoDB-stream event source mappings and schedules equal the specs in resources.py (the local
stack's pollers read the same specs)."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Template

from billing_platform import resources
from billing_platform.resources import FunctionSpec
from tests.infra.cfn import Synthesized, references

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]

SQS_FED = [pytest.param(fn, id=fn.name) for fn in resources.FUNCTIONS if fn.sqs_source]
STREAM_FED = [pytest.param(fn, id=fn.name) for fn in resources.FUNCTIONS if fn.stream_source]
SCHEDULED = [pytest.param(fn, id=fn.name) for fn in resources.FUNCTIONS if fn.schedule_minutes]


def _mapping_of(synthesized: Synthesized, spec: FunctionSpec) -> dict[str, Any]:
    function_id = synthesized.function_id(spec)
    found = [
        m["Properties"]
        for m in synthesized.of_type("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    assert len(found) == 1, f"{spec.name}: {len(found)} event source mappings"
    mapping: dict[str, Any] = found[0]
    return mapping


def test_one_mapping_per_event_source_of_the_specs(template: Template) -> None:
    expected = sum(1 for fn in resources.FUNCTIONS if fn.sqs_source) + sum(
        1 for fn in resources.FUNCTIONS if fn.stream_source
    )
    template.resource_count_is("AWS::Lambda::EventSourceMapping", expected)


def test_the_pipeline_has_its_two_sources() -> None:
    # Guards the parametrized tests below against silently running zero cases.
    assert len(SQS_FED) >= 1
    assert len(STREAM_FED) >= 1
    assert len(SCHEDULED) >= 1


@pytest.mark.parametrize("spec", SQS_FED)
def test_sqs_mapping_matches_the_spec(synthesized: Synthesized, spec: FunctionSpec) -> None:
    assert spec.sqs_source is not None
    mapping = _mapping_of(synthesized, spec)
    assert references(mapping["EventSourceArn"]) == {(synthesized.queue_id(spec.sqs_source.queue), "Arn")}
    assert mapping["BatchSize"] == spec.sqs_source.batch_size
    assert mapping["MaximumBatchingWindowInSeconds"] == spec.sqs_source.max_batching_window_seconds
    assert spec.sqs_source.report_batch_item_failures
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping.get("Enabled", True) is True


@pytest.mark.parametrize("spec", STREAM_FED)
def test_stream_mapping_matches_the_spec(synthesized: Synthesized, spec: FunctionSpec) -> None:
    source = spec.stream_source
    assert source is not None
    mapping = _mapping_of(synthesized, spec)
    assert references(mapping["EventSourceArn"]) == {(synthesized.table_id(source.table), "StreamArn")}
    assert mapping["BatchSize"] == source.batch_size
    assert mapping["MaximumBatchingWindowInSeconds"] == source.max_batching_window_seconds
    assert mapping["StartingPosition"] == source.starting_position
    assert mapping["MaximumRetryAttempts"] == source.retry_attempts
    assert mapping["BisectBatchOnFunctionError"] is source.bisect_batch_on_error
    assert mapping["ParallelizationFactor"] == source.parallelization_factor
    assert mapping["MaximumRecordAgeInSeconds"] == source.max_record_age_seconds
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    failures = synthesized.stack.usage_pipeline.stream_failures[spec.name]
    destination = mapping["DestinationConfig"]["OnFailure"]["Destination"]
    assert references(destination) == {(synthesized.logical_id(failures), "Arn")}


@pytest.mark.parametrize("spec", STREAM_FED)
def test_stream_source_reads_a_table_that_streams(spec: FunctionSpec) -> None:
    assert spec.stream_source is not None
    assert spec.stream_source.table.stream


@pytest.mark.parametrize("spec", SCHEDULED)
def test_scheduled_functions_run_at_the_spec_rate(synthesized: Synthesized, spec: FunctionSpec) -> None:
    function_id = synthesized.function_id(spec)
    rules = [
        r["Properties"]
        for r in synthesized.of_type("AWS::Events::Rule").values()
        if any((function_id, "Arn") in references(t["Arn"]) for t in r["Properties"]["Targets"])
    ]
    assert len(rules) == 1
    # EventBridge's rate syntax is singular for one unit: rate(1 minute).
    unit = "minute" if spec.schedule_minutes == 1 else "minutes"
    assert rules[0]["ScheduleExpression"] == f"rate({spec.schedule_minutes} {unit})"
    assert rules[0]["State"] == "ENABLED"
