"""Alarms routed to an encrypted SNS topic: dead-letter depth, function errors and throttles, stream
iterator age, API 5xx.

Extension point (issue 7, dashboard): `Monitoring.watch` is the registry of everything monitored.
Build the dashboard from `self.watched` (functions, queues, stream consumers, the API) in a new method
called from the stack, and add further alarms with `Monitoring.add_alarm`, which routes them to the topic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

PERIOD = Duration.minutes(5)
# The aggregator must keep up with the usage stream; records older than this mean it is falling behind.
ITERATOR_AGE_THRESHOLD_MS = 5 * 60 * 1000


@dataclass
class Watched:
    """Everything the stack hands to monitoring (the dashboard of issue 7 reads the same registry)."""

    functions: dict[str, lambda_.Function] = field(default_factory=dict)
    dead_letter_queues: dict[str, sqs.IQueue] = field(default_factory=dict)
    stream_consumers: dict[str, lambda_.Function] = field(default_factory=dict)
    apis: dict[str, apigw.RestApi] = field(default_factory=dict)


class Monitoring(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "AlarmTopicKey",
            description="Encrypts the billing alarm topic",
            enable_key_rotation=True,
            removal_policy=removal_policy,
        )
        # CloudWatch publishes alarm notifications to the encrypted topic: it needs to use the key.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],  # in a key policy "*" means this key
            )
        )
        self.topic = sns.Topic(self, "AlarmTopic", display_name="Billing platform alarms", master_key=self.key)
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={"Bool": {"aws:SecureTransport": "false"}},
            )
        )
        self.watched = Watched()
        self.alarms: dict[str, cloudwatch.Alarm] = {}

    def add_alarm(self, construct_id: str, alarm: cloudwatch.Alarm) -> cloudwatch.Alarm:
        alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
        self.alarms[construct_id] = alarm
        return alarm

    def _alarm(
        self, construct_id: str, metric: cloudwatch.IMetric, threshold: float, description: str
    ) -> cloudwatch.Alarm:
        return self.add_alarm(
            construct_id,
            cloudwatch.Alarm(
                self,
                construct_id,
                metric=metric,
                threshold=threshold,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            ),
        )

    def watch_function(self, name: str, function: lambda_.Function) -> None:
        self.watched.functions[name] = function
        key = name.title().replace("_", "")
        self._alarm(
            f"{key}Errors",
            function.metric_errors(period=PERIOD, statistic="Sum"),
            1,
            f"{name}: invocations failed in the last 5 minutes",
        )
        self._alarm(
            f"{key}Throttles",
            function.metric_throttles(period=PERIOD, statistic="Sum"),
            1,
            f"{name}: invocations were throttled in the last 5 minutes",
        )

    def watch_dead_letter_queue(self, name: str, queue: sqs.IQueue) -> None:
        self.watched.dead_letter_queues[name] = queue
        self._alarm(
            f"{name}Depth",
            queue.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum"),
            1,
            f"{name}: messages are waiting in a dead-letter / on-failure queue",
        )

    def watch_stream_consumer(self, name: str, function: lambda_.Function) -> None:
        self.watched.stream_consumers[name] = function
        self._alarm(
            f"{name.title().replace('_', '')}IteratorAge",
            function.metric("IteratorAge", period=PERIOD, statistic="Maximum"),
            ITERATOR_AGE_THRESHOLD_MS,
            f"{name}: the oldest stream record is over 5 minutes old (consumer falling behind)",
        )

    def watch_api(self, name: str, api: apigw.RestApi) -> None:
        self.watched.apis[name] = api
        self._alarm(
            f"{name}ServerErrors",
            api.metric_server_error(period=PERIOD, statistic="Sum"),
            5,
            f"{name}: API Gateway answered 5xx at least 5 times in 5 minutes",
        )
