"""DynamoDB tables and the usage queue, built from billing_platform.resources (the same definitions the
local stack provisions)."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from billing_platform import resources
from billing_platform.resources import KeySpec, QueueSpec, TableSpec

_ATTRIBUTE_TYPES = {"S": dynamodb.AttributeType.STRING, "N": dynamodb.AttributeType.NUMBER}


def _attribute(key: KeySpec) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=key.name, type=_ATTRIBUTE_TYPES[key.type])


class Data(Construct):
    """Every table of `resources.TABLES` (on demand, PITR, TTL, encryption, streams and GSIs as specified)
    and every queue with its dead-letter queue. Look them up by spec: `data.table(resources.USAGE_TABLE)`."""

    def __init__(self, scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        self._tables: dict[str, dynamodb.Table] = {}
        self._queues: dict[str, sqs.Queue] = {}
        self._dlqs: dict[str, sqs.Queue] = {}
        for spec in resources.TABLES:
            self._tables[spec.logical_id] = self._build_table(spec, removal_policy)
        for queue in resources.QUEUES:
            self._build_queue(queue)

    def _build_table(self, spec: TableSpec, removal_policy: RemovalPolicy) -> dynamodb.Table:
        table = dynamodb.Table(
            self,
            spec.logical_id,
            partition_key=_attribute(spec.partition_key),
            sort_key=_attribute(spec.sort_key) if spec.sort_key else None,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            time_to_live_attribute=spec.ttl_attribute,
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES if spec.stream else None,
            deletion_protection=removal_policy == RemovalPolicy.RETAIN,
            removal_policy=removal_policy,
        )
        for index in spec.indexes:
            table.add_global_secondary_index(
                index_name=index.name,
                partition_key=_attribute(index.partition_key),
                sort_key=_attribute(index.sort_key) if index.sort_key else None,
                projection_type=dynamodb.ProjectionType(index.projection),
            )
        return table

    def _build_queue(self, spec: QueueSpec) -> None:
        dlq = sqs.Queue(
            self,
            f"{spec.logical_id}Dlq",
            retention_period=Duration.days(spec.dlq_retention_days),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        queue = sqs.Queue(
            self,
            spec.logical_id,
            visibility_timeout=Duration.seconds(spec.visibility_timeout_seconds),
            retention_period=Duration.days(spec.retention_days),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=spec.max_receive_count),
        )
        self._queues[spec.logical_id] = queue
        self._dlqs[spec.logical_id] = dlq

    def table(self, spec: TableSpec) -> dynamodb.Table:
        return self._tables[spec.logical_id]

    def queue(self, spec: QueueSpec) -> sqs.Queue:
        return self._queues[spec.logical_id]

    def dead_letter_queue(self, spec: QueueSpec) -> sqs.Queue:
        return self._dlqs[spec.logical_id]

    @property
    def tables(self) -> dict[str, dynamodb.Table]:
        return dict(self._tables)
