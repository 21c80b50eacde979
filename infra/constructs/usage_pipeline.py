"""Event sources and schedules from the specs: SQS -> usage_consumer, usage-table stream ->
usage_aggregator (failed batches to an on-failure queue), EventBridge schedules -> meter_reporter and
reservation_sweeper."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from billing_platform.resources import FunctionSpec, SqsSourceSpec, StreamSourceSpec
from infra.constructs.data import Data
from infra.constructs.functions import Functions
from infra.nag import acknowledge

STREAM_FAILURE_RETENTION = Duration.days(14)
LIST_STREAMS_REASON = (
    "The DynamoDB stream event source needs dynamodb:ListStreams, which does not support resource-level "
    "permissions; reading records is scoped to the table's stream ARN."
)
FAILURE_QUEUE_REASON = (
    "This queue is itself the on-failure destination of the usage stream; its depth is alarmed on and "
    "its messages only point at stream records to inspect."
)


class UsagePipeline(Construct):
    """Wires every FunctionSpec's sqs_source / stream_source / schedule_minutes to its function.
    `stream_failures[name]` is the on-failure queue of a stream-fed function."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        specs: tuple[FunctionSpec, ...],
        data: Data,
        functions: Functions,
    ) -> None:
        super().__init__(scope, construct_id)
        self._data = data
        self.stream_failures: dict[str, sqs.Queue] = {}
        self.schedules: dict[str, events.Rule] = {}
        for spec in specs:
            function = functions[spec]
            if spec.sqs_source:
                function.add_event_source(self._sqs_source(spec.sqs_source))
            if spec.stream_source:
                function.add_event_source(self._stream_source(spec, spec.stream_source))
                acknowledge(function.role or function, "AwsSolutions-IAM5[Resource::*]", LIST_STREAMS_REASON)
            if spec.schedule_minutes:
                self.schedules[spec.name] = self._schedule(spec, function, spec.schedule_minutes)

    def _sqs_source(self, source: SqsSourceSpec) -> sources.SqsEventSource:
        return sources.SqsEventSource(
            self._data.queue(source.queue),
            batch_size=source.batch_size,
            max_batching_window=Duration.seconds(source.max_batching_window_seconds),
            report_batch_item_failures=source.report_batch_item_failures,
        )

    def _stream_source(self, spec: FunctionSpec, source: StreamSourceSpec) -> sources.DynamoEventSource:
        failures = sqs.Queue(
            self,
            f"{spec.name.title().replace('_', '')}StreamFailures",
            retention_period=STREAM_FAILURE_RETENTION,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        acknowledge(failures, "AwsSolutions-SQS3", FAILURE_QUEUE_REASON)
        self.stream_failures[spec.name] = failures
        return sources.DynamoEventSource(
            self._data.table(source.table),
            starting_position=lambda_.StartingPosition[source.starting_position],
            batch_size=source.batch_size,
            max_batching_window=Duration.seconds(source.max_batching_window_seconds),
            retry_attempts=source.retry_attempts,
            bisect_batch_on_error=source.bisect_batch_on_error,
            report_batch_item_failures=source.report_batch_item_failures,
            parallelization_factor=source.parallelization_factor,
            max_record_age=Duration.seconds(source.max_record_age_seconds),
            on_failure=sources.SqsDlq(failures),
            # Lambda drops the other records before invoking (no cost, no invocation); the local poller
            # applies the same prefixes.
            filters=[
                lambda_.FilterCriteria.filter({"dynamodb": {"Keys": {"pk": {"S": lambda_.FilterRule.begins_with(p)}}}})
                for p in source.key_prefixes
            ]
            or None,
        )

    def _schedule(self, spec: FunctionSpec, function: lambda_.IFunction, minutes: int) -> events.Rule:
        return events.Rule(
            self,
            f"{spec.name.title().replace('_', '')}Schedule",
            description=f"Runs {spec.name} every {minutes} minute{'s' if minutes != 1 else ''}",
            schedule=events.Schedule.rate(Duration.minutes(minutes)),
            targets=[targets.LambdaFunction(function, retry_attempts=2, max_event_age=Duration.minutes(minutes))],
        )
