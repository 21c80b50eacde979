"""Creates the tables and queues of `billing_platform.resources` on an emulator, with the same keys,
indexes, streams, TTL and redrive settings the CDK stack declares."""

from __future__ import annotations

import json
from typing import Any

from billing_platform import resources
from billing_platform.resources import EventBusSpec, QueueSpec, TableSpec

# Local only: a queue every event on the bus is also copied to, so tests and developers can read the bus.
EVENTS_TAP_QUEUE = "billing-events-tap"
EVENTS_TAP_ENV = "LOCAL_EVENTS_TAP_QUEUE_URL"


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
    # ListTables pages at 100 names: a DynamoDB Local shared by a test run holds more than that.
    existing = {n for page in dynamodb.get_paginator("list_tables").paginate() for n in page["TableNames"]}
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


def _queue_arn(sqs: Any, url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def create_event_bus(
    events: Any, sqs: Any, spec: EventBusSpec, queue_urls: dict[str, str], prefix: str = ""
) -> dict[str, str]:
    """The bus, one rule per `spec.rules` with its SQS target (queues already created: env var -> URL), and
    the local tap queue with a rule taking every event of `spec.source`. Returns env var -> name/URL."""
    name = f"{prefix}{spec.local_name}"
    if name not in {b["Name"] for b in events.list_event_buses()["EventBuses"]}:
        events.create_event_bus(Name=name)
    tap_url = sqs.create_queue(QueueName=f"{prefix}{EVENTS_TAP_QUEUE}")["QueueUrl"]
    targets = [
        (f"{prefix}{rule.local_name}", list(rule.detail_types), queue_urls[rule.queue.env_var]) for rule in spec.rules
    ]
    targets.append((f"{prefix}{EVENTS_TAP_QUEUE}", [], tap_url))
    for rule_name, detail_types, url in targets:
        pattern: dict[str, Any] = {"source": [spec.source]}
        if detail_types:
            pattern["detail-type"] = detail_types
        events.put_rule(Name=rule_name, EventBusName=name, EventPattern=json.dumps(pattern), State="ENABLED")
        events.put_targets(Rule=rule_name, EventBusName=name, Targets=[{"Id": "queue", "Arn": _queue_arn(sqs, url)}])
    return {spec.env_var: name, EVENTS_TAP_ENV: tap_url}
