"""The local stack provisions what the CDK stack declares, from the same resources.py: keys and their
types, GSIs, streams, TTL on DynamoDB Local; the usage queue's redrive on moto."""

from __future__ import annotations

import json
from typing import Any

import pytest

from billing_platform import resources
from billing_platform.resources import TableSpec
from local_stack.provision import create_queue, create_tables


def _keys(spec_keys: list[Any]) -> list[dict[str, str]]:
    return [{"AttributeName": key.name, "KeyType": kind} for key, kind in spec_keys if key is not None]


@pytest.mark.ddblocal
@pytest.mark.parametrize("spec", resources.TABLES, ids=lambda s: s.logical_id)
def test_tables_match_the_resource_definitions(
    dynamodb_local: Any, ddb_local_tables: dict[str, str], spec: TableSpec
) -> None:
    client = dynamodb_local.client("dynamodb")
    name = ddb_local_tables[spec.env_var]
    table = client.describe_table(TableName=name)["Table"]
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    assert table["KeySchema"] == _keys([(spec.partition_key, "HASH"), (spec.sort_key, "RANGE")])
    assert types[spec.partition_key.name] == spec.partition_key.type
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    stream = table.get("StreamSpecification", {})
    assert stream.get("StreamEnabled", False) is spec.stream
    if spec.stream:
        assert stream["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    indexes = {i["IndexName"]: i for i in table.get("GlobalSecondaryIndexes", [])}
    assert set(indexes) == {i.name for i in spec.indexes}
    for index in spec.indexes:
        assert indexes[index.name]["KeySchema"] == _keys([(index.partition_key, "HASH"), (index.sort_key, "RANGE")])
        if index.sort_key:
            assert types[index.sort_key.name] == index.sort_key.type
    ttl = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED"
    assert ttl["AttributeName"] == spec.ttl_attribute


@pytest.mark.ddblocal
def test_creating_tables_twice_is_harmless(dynamodb_local: Any, ddb_local_tables: dict[str, str]) -> None:
    prefix = ddb_local_tables[resources.BILLING_TABLE.env_var].removesuffix(resources.BILLING_TABLE.local_name)
    assert create_tables(dynamodb_local.client("dynamodb"), prefix=prefix) == ddb_local_tables


def test_usage_queue_redrives_to_its_dead_letter_queue_after_max_receive_count(moto_aws: dict[str, str]) -> None:
    import boto3

    sqs = boto3.client("sqs", region_name="us-east-1")
    spec = resources.USAGE_QUEUE
    url, dlq_url = moto_aws[spec.env_var], moto_aws[spec.dlq_env_var]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": spec.max_receive_count,
    }
    assert int(attributes["VisibilityTimeout"]) == spec.visibility_timeout_seconds
    assert int(attributes["MessageRetentionPeriod"]) == spec.retention_days * 86_400

    # A message received max_receive_count times without deletion moves to the DLQ on the next receive.
    sqs.send_message(QueueUrl=url, MessageBody="poison")
    for _ in range(spec.max_receive_count):
        (message,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    assert sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1).get("Messages", []) == []
    (dead,) = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=1)["Messages"]
    assert dead["Body"] == "poison"
    assert create_queue(sqs, spec) == {spec.env_var: url, spec.dlq_env_var: dlq_url}


def test_creating_tables_twice_is_harmless_past_the_first_page_of_list_tables(moto_aws: dict[str, str]) -> None:
    import boto3

    # ListTables answers 100 names a page: the run's tables sort after a hundred others, on page two.
    client = boto3.client("dynamodb", region_name="us-east-1")
    for n in range(100):
        client.create_table(
            TableName=f"a-filler-{n:03}",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
    first = create_tables(client, prefix="zz-")
    assert create_tables(client, prefix="zz-") == first
    assert len(client.list_tables()["TableNames"]) == 100
