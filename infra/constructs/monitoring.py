"""Alarms routed to an encrypted SNS topic, and the operations dashboard.

Alarms: dead-letter depth, function errors and throttles, stream iterator age, API 5xx, the usage
queue's oldest message, and the meter reporter (lag, failed meter events).

Dashboard (`add_dashboard`, called once by the stack after everything is watched), built from the
`watched` registry and the application metrics the functions emit as EMF (namespace `Billing`,
dimension `service`): entitlement checks allowed / denied (in total and by `resource_type`), usage
records accepted / written / aggregated, Stripe webhook events (in total and by `event_type` and
`outcome`), meter events sent / failed and reporter lag, queue and DLQ depth, stream iterator age,
function errors, throttles and latency, API latency and errors. Per-dimension graphs are CloudWatch
SEARCH expressions, so they show whatever values the functions emit without the dashboard listing them.
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

from billing_platform import resources
from billing_platform.freshness import models as freshness
from billing_platform.metering import metrics as meter_metrics

PERIOD = Duration.minutes(5)
# POWERTOOLS_METRICS_NAMESPACE / POWERTOOLS_SERVICE_NAME of every function (infra/constructs/functions.py).
NAMESPACE = resources.METRICS_NAMESPACE
SERVICE = "billing"
# Application metrics (EMF) the dashboard graphs; per-dimension graphs expect these dimension names.
ENTITLEMENT_METRICS = ("EntitlementGranted", "EntitlementDenied")
USAGE_METRICS = ("UsageRecordsAccepted", "UsageRecordsRejected", "UsageRecordsWritten", "UsageRecordsAggregated")
WEBHOOK_METRIC = "StripeEventReceived"
RESOURCE_DIMENSION = "resource_type"
WEBHOOK_DIMENSIONS = ("event_type", "outcome")
# The thresholds `billing-admin freshness` and the operator console judge the same figures by.
QUEUE_AGE_THRESHOLD_SECONDS = freshness.QUEUE_AGE_THRESHOLD_SECONDS
METER_LAG_THRESHOLD_SECONDS = freshness.METER_LAG_THRESHOLD_SECONDS
METER_PERIOD = Duration.hours(1)
ITERATOR_AGE_THRESHOLD_MS = freshness.ITERATOR_AGE_THRESHOLD_SECONDS * 1000


@dataclass
class Watched:
    """Everything the stack hands to monitoring (the meter reporter's dashboard reads the same registry)."""

    functions: dict[str, lambda_.Function] = field(default_factory=dict)
    dead_letter_queues: dict[str, sqs.IQueue] = field(default_factory=dict)
    stream_consumers: dict[str, lambda_.Function] = field(default_factory=dict)
    apis: dict[str, apigw.RestApi] = field(default_factory=dict)
    queues: dict[str, sqs.IQueue] = field(default_factory=dict)


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
        self.dashboard: cloudwatch.Dashboard | None = None

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
            freshness.DLQ_DEPTH_THRESHOLD,
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

    def watch_queue(self, name: str, queue: sqs.IQueue) -> None:
        """A work queue: depth on the dashboard, an alarm when its oldest message waits too long."""
        self.watched.queues[name] = queue
        self._alarm(
            f"{name}OldestMessage",
            queue.metric_approximate_age_of_oldest_message(period=PERIOD, statistic="Maximum"),
            QUEUE_AGE_THRESHOLD_SECONDS,
            f"{name}: a message has waited over {QUEUE_AGE_THRESHOLD_SECONDS // 60} minutes (consumer not draining)",
        )

    # --- application metrics ----------------------------------------------------------------------

    @staticmethod
    def app_metric(name: str, statistic: str = "Sum", period: Duration = PERIOD) -> cloudwatch.Metric:
        """An EMF metric of the functions (Powertools adds the `service` dimension to every one)."""
        return cloudwatch.Metric(
            namespace=NAMESPACE,
            metric_name=name,
            dimensions_map={"service": SERVICE},
            statistic=statistic,
            period=period,
        )

    @staticmethod
    def search(
        metric: str, dimensions: tuple[str, ...], label: str, statistic: str = "Sum"
    ) -> cloudwatch.MathExpression:
        """One line per value of `dimensions` (CloudWatch SEARCH over the functions' namespace)."""
        schema = ",".join((NAMESPACE, *dimensions, "service"))
        return cloudwatch.MathExpression(
            expression=f"SEARCH('{{{schema}}} MetricName=\"{metric}\"', '{statistic}', {int(PERIOD.to_seconds())})",
            label=label,
            period=PERIOD,
        )

    def watch_meter_reporter(self) -> None:
        """Alarms on the meter reporter's own metrics: usage left unreported, meter events refused.
        Missing lag data is breaching: a reporter that stopped running reports nothing."""
        self.add_alarm(
            "MeterReporterLag",
            cloudwatch.Alarm(
                self,
                "MeterReporterLag",
                metric=self.app_metric(meter_metrics.REPORTER_LAG, "Maximum", METER_PERIOD),
                threshold=METER_LAG_THRESHOLD_SECONDS,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
                alarm_description=(
                    "meter_reporter: metered usage older than 2 hours is not reported to Stripe "
                    "(or the reporter did not run for an hour); invoices will miss it until it is"
                ),
            ),
        )
        self.add_alarm(
            "MeterEventsFailed",
            cloudwatch.Alarm(
                self,
                "MeterEventsFailed",
                metric=self.app_metric(meter_metrics.EVENTS_FAILED, "Sum", METER_PERIOD),
                threshold=1,
                evaluation_periods=2,
                datapoints_to_alarm=2,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=(
                    "meter_reporter: Stripe refused meter events two hours in a row; claims are retried each "
                    "run, see the failures in the reporter's logs (billing-admin meter run to retry now)"
                ),
            ),
        )

    # --- dashboard --------------------------------------------------------------------------------

    def add_dashboard(self, dashboard_name: str | None = None) -> cloudwatch.Dashboard:
        """The operations dashboard over everything watched so far (call once, last)."""
        functions = self.watched.functions
        dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=dashboard_name,
            default_interval=Duration.hours(6),
            period_override=cloudwatch.PeriodOverride.AUTO,
        )

        def graph(title: str, left: list[cloudwatch.IMetric], **kwargs: object) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(title=title, left=left, width=12, height=6, **kwargs)  # type: ignore[arg-type]

        dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=(
                    "# Billing platform\nApplication metrics: namespace `Billing`. Alarms go to the SNS topic "
                    "`AlarmTopicArn` (stack output). Operator runbook: README, section Operations (`billing-admin`)."
                ),
                width=24,
                height=2,
            )
        )
        dashboard.add_widgets(
            graph("Entitlement checks: allowed / denied", [self.app_metric(m) for m in ENTITLEMENT_METRICS]),
            graph(
                "Entitlement checks by resource",
                [self.search(m, (RESOURCE_DIMENSION,), m) for m in ENTITLEMENT_METRICS],
            ),
        )
        dashboard.add_widgets(
            graph("Usage records", [self.app_metric(m) for m in USAGE_METRICS]),
            graph(
                "Stripe webhook events by type and outcome",
                [self.app_metric(WEBHOOK_METRIC), self.search(WEBHOOK_METRIC, WEBHOOK_DIMENSIONS, "by type/outcome")],
            ),
        )
        dashboard.add_widgets(
            graph(
                "Meter events",
                [
                    self.app_metric(meter_metrics.EVENTS_SENT),
                    self.app_metric(meter_metrics.EVENTS_ALREADY_DELIVERED),
                    self.app_metric(meter_metrics.EVENTS_FAILED),
                    self.search(meter_metrics.UNITS_REPORTED, (meter_metrics.RESOURCE_DIMENSION,), "units"),
                ],
            ),
            graph(
                "Meter reporter lag (s)",
                [self.app_metric(meter_metrics.REPORTER_LAG, "Maximum")],
                left_annotations=[cloudwatch.HorizontalAnnotation(value=METER_LAG_THRESHOLD_SECONDS, label="alarm")],
            ),
        )
        queue_depths: list[cloudwatch.IMetric] = [
            q.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum", label=name)
            for name, q in self.watched.queues.items()
        ]
        queue_ages: list[cloudwatch.IMetric] = [
            q.metric_approximate_age_of_oldest_message(period=PERIOD, statistic="Maximum", label=f"{name} oldest (s)")
            for name, q in self.watched.queues.items()
        ]
        dashboard.add_widgets(
            graph("Queue depth", queue_depths, right=queue_ages),
            graph(
                "Dead-letter depth",
                [
                    q.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum", label=name)
                    for name, q in self.watched.dead_letter_queues.items()
                ],
            ),
        )
        dashboard.add_widgets(
            graph(
                "Stream iterator age (ms)",
                [
                    fn.metric("IteratorAge", period=PERIOD, statistic="Maximum", label=name)
                    for name, fn in self.watched.stream_consumers.items()
                ],
                left_annotations=[cloudwatch.HorizontalAnnotation(value=ITERATOR_AGE_THRESHOLD_MS, label="alarm")],
            ),
            graph(
                "Function errors and throttles",
                [fn.metric_errors(period=PERIOD, statistic="Sum", label=name) for name, fn in functions.items()],
                right=[
                    fn.metric_throttles(period=PERIOD, statistic="Sum", label=f"{name} throttles")
                    for name, fn in functions.items()
                ],
            ),
        )
        dashboard.add_widgets(
            graph(
                "Function latency p99 (ms)",
                [fn.metric_duration(period=PERIOD, statistic="p99", label=name) for name, fn in functions.items()],
            ),
            graph(
                "API latency p99 (ms) and 5xx",
                [
                    api.metric_latency(period=PERIOD, statistic="p99", label=name)
                    for name, api in self.watched.apis.items()
                ],
                right=[
                    api.metric_server_error(period=PERIOD, statistic="Sum", label=f"{name} 5xx")
                    for name, api in self.watched.apis.items()
                ],
            ),
        )
        self.dashboard = dashboard
        return dashboard
