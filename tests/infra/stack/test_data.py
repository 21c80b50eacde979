"""Tables and queues in the template match billing_platform.resources, the definitions the local stack
provisions too."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from billing_platform import resources
from billing_platform.resources import QueueSpec, TableSpec
from tests.infra.cfn import Synthesized, references

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]

DAY = 86_400


def _queue_specs() -> set[QueueSpec]:
    found: set[QueueSpec] = set()
    for fn in resources.FUNCTIONS:
        found.update(fn.sends_to)
        if fn.sqs_source:
            found.add(fn.sqs_source.queue)
    return found


def _table(synthesized: Synthesized, spec: TableSpec) -> dict[str, Any]:
    properties: dict[str, Any] = synthesized.resources[synthesized.table_id(spec)]["Properties"]
    return properties


def test_one_table_per_table_spec(template: Template) -> None:
    template.resource_count_is("AWS::DynamoDB::Table", len(resources.TABLES))


def test_each_queue_has_a_dead_letter_queue_and_each_stream_consumer_an_on_failure_queue(template: Template) -> None:
    stream_consumers = [fn for fn in resources.FUNCTIONS if fn.stream_source]
    template.resource_count_is("AWS::SQS::Queue", 2 * len(_queue_specs()) + len(stream_consumers))


@pytest.mark.parametrize("spec", resources.TABLES, ids=lambda s: s.logical_id)
def test_tables_are_on_demand_with_pitr_encryption_ttl_and_the_spec_keys(
    synthesized: Synthesized, spec: TableSpec
) -> None:
    table = _table(synthesized, spec)
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["TimeToLiveSpecification"] == {"AttributeName": spec.ttl_attribute, "Enabled": True}
    expected_keys = [{"AttributeName": spec.partition_key.name, "KeyType": "HASH"}]
    if spec.sort_key:
        expected_keys.append({"AttributeName": spec.sort_key.name, "KeyType": "RANGE"})
    assert table["KeySchema"] == expected_keys
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    assert types[spec.partition_key.name] == spec.partition_key.type
    if spec.sort_key:
        assert types[spec.sort_key.name] == spec.sort_key.type


@pytest.mark.parametrize("spec", resources.TABLES, ids=lambda s: s.logical_id)
def test_streams_exactly_where_the_spec_asks_with_both_images(synthesized: Synthesized, spec: TableSpec) -> None:
    table = _table(synthesized, spec)
    if spec.stream:
        assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    else:
        assert "StreamSpecification" not in table


def test_usage_table_streams_new_and_old_images(template: Template) -> None:
    assert resources.USAGE_TABLE.stream
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
            "BillingMode": "PAY_PER_REQUEST",
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "TimeToLiveSpecification": {"AttributeName": resources.USAGE_TABLE.ttl_attribute, "Enabled": True},
        },
    )


@pytest.mark.parametrize("spec", resources.TABLES, ids=lambda s: s.logical_id)
def test_global_secondary_indexes_match_the_spec(synthesized: Synthesized, spec: TableSpec) -> None:
    table = _table(synthesized, spec)
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    indexes = {gsi["IndexName"]: gsi for gsi in table.get("GlobalSecondaryIndexes", [])}
    assert set(indexes) == {index.name for index in spec.indexes}
    for index in spec.indexes:
        keys = [{"AttributeName": index.partition_key.name, "KeyType": "HASH"}]
        if index.sort_key:
            keys.append({"AttributeName": index.sort_key.name, "KeyType": "RANGE"})
            assert types[index.sort_key.name] == index.sort_key.type
        assert indexes[index.name]["KeySchema"] == keys
        assert indexes[index.name]["Projection"] == {"ProjectionType": index.projection}
        assert types[index.partition_key.name] == index.partition_key.type


def test_aggregates_top_consumer_index_projects_keys_only(synthesized: Synthesized) -> None:
    # Adding to a total must cost no index write: the index neither projects the total nor keys on it.
    table = _table(synthesized, resources.AGGREGATES_TABLE)
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert {k["AttributeName"] for k in index["KeySchema"]} == {"top_pk", "top_sk"}


def test_data_is_retained_and_protected_by_default(synthesized: Synthesized) -> None:
    for spec in resources.TABLES:
        resource = synthesized.resources[synthesized.table_id(spec)]
        assert resource["DeletionPolicy"] == "Retain"
        assert resource["UpdateReplacePolicy"] == "Retain"
        assert resource["Properties"]["DeletionProtectionEnabled"] is True


@pytest.mark.parametrize("spec", [pytest.param(q, id=q.logical_id) for q in sorted(_queue_specs(), key=str)])
def test_queue_redrives_to_its_dead_letter_queue(synthesized: Synthesized, spec: QueueSpec) -> None:
    queue = synthesized.resources[synthesized.queue_id(spec)]["Properties"]
    dlq_id = synthesized.dlq_id(spec)
    redrive = queue["RedrivePolicy"]
    assert redrive["maxReceiveCount"] == spec.max_receive_count
    assert references(redrive["deadLetterTargetArn"]) == {(dlq_id, "Arn")}
    assert queue["VisibilityTimeout"] == spec.visibility_timeout_seconds
    assert queue["MessageRetentionPeriod"] == spec.retention_days * DAY
    assert queue["SqsManagedSseEnabled"] is True
    dlq = synthesized.resources[dlq_id]["Properties"]
    assert dlq["MessageRetentionPeriod"] == spec.dlq_retention_days * DAY
    # A DLQ must outlive the messages it receives: retention is counted from the original enqueue.
    assert spec.dlq_retention_days > spec.retention_days


def test_every_queue_refuses_plain_http(template: Template, synthesized: Synthesized) -> None:
    queues = set(synthesized.of_type("AWS::SQS::Queue"))
    secured: set[str] = set()
    for policy in synthesized.of_type("AWS::SQS::QueuePolicy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Deny" and statement.get("Condition") == {
                "Bool": {"aws:SecureTransport": "false"}
            }:
                secured |= {ref for ref, _ in references(policy["Properties"]["Queues"])}
    assert secured == queues
    template.has_resource_properties("AWS::SQS::QueuePolicy", {"PolicyDocument": Match.any_value()})


@pytest.mark.parametrize("fn", [fn for fn in resources.FUNCTIONS if fn.sqs_source], ids=lambda fn: fn.name)
def test_visibility_timeout_covers_six_consumer_timeouts(fn: Any) -> None:
    # AWS's rule for SQS event sources: otherwise a batch still being processed is delivered again.
    assert fn.sqs_source.queue.visibility_timeout_seconds >= 6 * fn.timeout_seconds
