"""Creates the tables and queues of `billing_platform.resources` on an emulator, with the same keys,
indexes, streams, TTL and redrive settings the CDK stack declares."""

from __future__ import annotations

import json
from typing import Any

from billing_platform import resources
from billing_platform.resources import QueueSpec, TableSpec


def table_definition(spec: TableSpec, name: str) -> dict[str, Any]:
    attrs = {spec.partition_key.name: spec.partition_key.type}
    key_schema = [{"AttributeName": spec.partition_key.name, "KeyType": "HASH"}]
    if spec.sort_key:
        attrs[spec.sort_key.name] = spec.sort_key.type
        key_schema.append({"AttributeName": spec.sort_key.name, "KeyType": "RANGE"})
    gsis = []
    for index in spec.indexes:
        attrs[index.partition_key.name] = index.partition_key.type
        index_keys = [{"AttributeName": index.partition_key.name, "KeyType": "HASH"}]
        if index.sort_key:
            attrs[index.sort_key.name] = index.sort_key.type
            index_keys.append({"AttributeName": index.sort_key.name, "KeyType": "RANGE"})
        projection = {"ProjectionType": index.projection}
        gsis.append({"IndexName": index.name, "KeySchema": index_keys, "Projection": projection})
    definition: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": [{"AttributeName": k, "AttributeType": v} for k, v in attrs.items()],
        "KeySchema": key_schema,
        "BillingMode": "PAY_PER_REQUEST",
    }
    if gsis:
        definition["GlobalSecondaryIndexes"] = gsis
    if spec.stream:
        definition["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    return definition


def create_tables(dynamodb: Any, prefix: str = "") -> dict[str, str]:
    """Create every table (idempotent). Returns env var -> table name."""
    existing = set(dynamodb.list_tables()["TableNames"])
    names: dict[str, str] = {}
    for spec in resources.TABLES:
        name = f"{prefix}{spec.local_name}"
        names[spec.env_var] = name
        if name in existing:
            continue
        dynamodb.create_table(**table_definition(spec, name))
        dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
        if spec.ttl_attribute:
            dynamodb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute}
            )
    return names


def create_queue(sqs: Any, spec: QueueSpec, prefix: str = "") -> dict[str, str]:
    """Create the queue and its DLQ with the redrive policy. Returns env var -> queue URL."""
    dlq_url = sqs.create_queue(
        QueueName=f"{prefix}{spec.dlq_local_name}",
        Attributes={"MessageRetentionPeriod": str(spec.dlq_retention_days * 86_400)},
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(
        QueueName=f"{prefix}{spec.local_name}",
        Attributes={
            "VisibilityTimeout": str(spec.visibility_timeout_seconds),
            "MessageRetentionPeriod": str(spec.retention_days * 86_400),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": spec.max_receive_count}),
        },
    )["QueueUrl"]
    return {spec.env_var: url, spec.dlq_env_var: dlq_url}
