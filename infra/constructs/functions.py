"""One Lambda function per resources.FunctionSpec, each with its own role holding only what the spec says
it reads, writes, sends to or needs (least privilege), its own log group, layers and environment."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from billing_platform import resources
from billing_platform.resources import FunctionSpec, TableSpec
from infra.constructs.data import Data
from infra.constructs.layers import ASSET_EXCLUDE, Layers
from infra.constructs.webhooks import StripeSecrets
from infra.nag import acknowledge

# Explicit action lists (no wildcards). Transactions are authorised per item by these same actions.
TABLE_READ_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DescribeTable",
)
TABLE_WRITE_ACTIONS = (
    *TABLE_READ_ACTIONS,
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
)
# A function whose spec "writes" a table but only ever updates items in place gets just UpdateItem on top
# of reads: the authorizer looks keys up and stamps their last use, nothing more.
NARROW_WRITE_ACTIONS: Mapping[str, tuple[str, ...]] = {
    resources.AUTHORIZER.name: (*TABLE_READ_ACTIONS, "dynamodb:UpdateItem"),
}

XRAY_REASON = (
    "Active X-Ray tracing: xray:PutTraceSegments and xray:PutTelemetryRecords do not support "
    "resource-level permissions, so AWS requires Resource '*'."
)


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def table_resource_arns(table: dynamodb.ITable, spec: TableSpec) -> list[str]:
    """The table and each of its named indexes (no index/* wildcard)."""
    return [table.table_arn, *(f"{table.table_arn}/index/{index.name}" for index in spec.indexes)]


class Functions(Construct):
    """`functions[name]` is the Lambda for `resources.FUNCTIONS` entry `name`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        specs: tuple[FunctionSpec, ...],
        functions_dir: Path,
        runtime: lambda_.Runtime,
        data: Data,
        layers: Layers,
        stripe: StripeSecrets,
        environment_name: str,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self._data = data
        self.functions: dict[str, lambda_.Function] = {}
        for spec in specs:
            self.functions[spec.name] = self._build(
                spec,
                functions_dir=functions_dir,
                runtime=runtime,
                layers=layers,
                stripe=stripe,
                environment_name=environment_name,
                log_retention=log_retention,
                removal_policy=removal_policy,
            )

    def __getitem__(self, spec: FunctionSpec) -> lambda_.Function:
        return self.functions[spec.name]

    def _build(
        self,
        spec: FunctionSpec,
        *,
        functions_dir: Path,
        runtime: lambda_.Runtime,
        layers: Layers,
        stripe: StripeSecrets,
        environment_name: str,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> lambda_.Function:
        construct_id = _pascal(spec.name)
        log_group = logs.LogGroup(self, f"{construct_id}Logs", retention=log_retention, removal_policy=removal_policy)
        # Our own role instead of the default one: AWSLambdaBasicExecutionRole would grant logs on '*'.
        role = iam.Role(
            self,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Least-privilege role of the {spec.name} function",
        )
        log_group.grant_write(role)
        function = lambda_.Function(
            self,
            construct_id,
            description=spec.description,
            runtime=runtime,
            architecture=lambda_.Architecture.X86_64,
            handler="handler.handler",
            code=lambda_.Code.from_asset(str(functions_dir / spec.name), exclude=ASSET_EXCLUDE),
            layers=layers.for_function(spec),
            memory_size=spec.memory_mb,
            timeout=Duration.seconds(spec.timeout_seconds),
            tracing=lambda_.Tracing.ACTIVE,
            role=role,
            log_group=log_group,
            environment=self._environment(spec, stripe, environment_name),
        )
        self._grant(spec, role, stripe)
        acknowledge(role, "AwsSolutions-IAM5[Resource::*]", XRAY_REASON)
        return function

    def _environment(self, spec: FunctionSpec, stripe: StripeSecrets, environment_name: str) -> dict[str, str]:
        env = {
            "ENVIRONMENT": environment_name,
            "POWERTOOLS_SERVICE_NAME": "billing",
            "POWERTOOLS_METRICS_NAMESPACE": resources.METRICS_NAMESPACE,
            "POWERTOOLS_LOG_LEVEL": "INFO",
            # Responses can carry tenant data; traces keep timings, not payloads.
            "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
        }
        for table_spec in dict.fromkeys((*spec.reads, *spec.writes)):  # ordered: stable templates
            env[table_spec.env_var] = self._data.table(table_spec).table_name
        for queue_spec in spec.sends_to:
            env[queue_spec.env_var] = self._data.queue(queue_spec).queue_url
        if spec.needs_stripe_secrets:
            env.update(stripe.environment)
        env.update(spec.extra_env)
        return env

    def _grant(self, spec: FunctionSpec, role: iam.Role, stripe: StripeSecrets) -> None:
        write_actions = NARROW_WRITE_ACTIONS.get(spec.name, TABLE_WRITE_ACTIONS)
        for table_spec in spec.writes:
            self._table_statement(role, table_spec, write_actions)
        for table_spec in spec.reads:
            if table_spec not in spec.writes:
                self._table_statement(role, table_spec, TABLE_READ_ACTIONS)
        for queue_spec in spec.sends_to:
            self._data.queue(queue_spec).grant_send_messages(role)
        if spec.needs_stripe_secrets:
            stripe.grant_read(role)

    def _table_statement(self, role: iam.Role, spec: TableSpec, actions: tuple[str, ...]) -> None:
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=list(actions),
                resources=table_resource_arns(self._data.table(spec), spec),
            )
        )
