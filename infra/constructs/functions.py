"""One Lambda function per resources.FunctionSpec, each with its own role holding only what the spec says
it reads, writes, sends to or needs (least privilege), its own log group, layers and environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from billing_platform import resources
from billing_platform.resources import FunctionSpec, TableSpec
from infra.constructs.data import Data
from infra.constructs.events import BillingEvents
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


@dataclass(frozen=True)
class ItemScopedAccess:
    """Table access narrower than TABLE_READ/WRITE_ACTIONS: these item actions on the base table only (no
    index), on items whose partition key matches one of `leading_keys` (IAM StringLike patterns)."""

    actions: tuple[str, ...]
    leading_keys: tuple[str, ...]


# The authorizer reads one key item by its hash (GetItem of APIKEY#<sha256>/KEY, ApiKeyRepository.
# get_by_hash) and stamps its last use (UpdateItem of the same item, touch_last_used); nothing else, so a
# bug or a compromise of the most exposed function can read no other tenant data and write nothing else.
ITEM_SCOPED_ACCESS: Mapping[str, ItemScopedAccess] = {
    # API keys (GetItem by hash, last-used UpdateItem) and portal tokens (GetItem by id; never written here).
    resources.AUTHORIZER.name: ItemScopedAccess(
        actions=("dynamodb:GetItem", "dynamodb:UpdateItem"), leading_keys=("APIKEY#*", "PORTALTOKEN#*")
    ),
    # billing_platform.events: reads a sharded quota's counters (BatchGetItem of QUOTA#...), claims and marks
    # event markers (PutItem / UpdateItem of EVENTS#<tenant>); it can neither change a counter's numbers
    # in a way the API could not, nor touch plans, keys or grants.
    resources.QUOTA_EVENTS.name: ItemScopedAccess(
        actions=("dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"),
        leading_keys=("QUOTA#*", "EVENTS#*"),
    ),
    # billing_platform.tenant_webhooks: the tenant's endpoints (Query, with their signing secrets) and
    # delivery records (BatchGetItem, PutItem), all under WEBHOOKS#<tenant>.
    resources.WEBHOOK_DELIVERY.name: ItemScopedAccess(
        actions=("dynamodb:Query", "dynamodb:BatchGetItem", "dynamodb:PutItem"), leading_keys=("WEBHOOKS#*",)
    ),
}

# auth.usage_plans.UsagePlanKeys.ensure_tenant, as API Gateway authorizes its calls (action = HTTP method on
# the control-plane path): GetApiKeys (GET /apikeys), CreateApiKey (POST /apikeys; untagged, since keys are
# found by name and tag-on-create would need apigateway:PUT on an undocumented resource) and
# CreateUsagePlanKey (POST /usageplans/<id>/keys) on the tenant usage plan only.
USAGE_PLAN_KEY_MANAGERS = (resources.API_KEYS,)
# The newest Python runtime aws-cdk-lib 2.275 knows, the one cdk-nag's AwsSolutions-L1 asks for.
LATEST_PYTHON_RUNTIME = lambda_.Runtime.PYTHON_3_14
# These functions are reached by API Gateway through an invoke ARN built from their name (see
# infra.constructs.api): their environment and policy name the usage plan, whose stage deployment holds
# the methods integrating them, so a reference to the function from those methods would be a cycle.
NAMED_FUNCTIONS = USAGE_PLAN_KEY_MANAGERS

METRICS_READ_REASON = (
    "cloudwatch:GetMetricStatistics has no resource-level permissions (AWS documents '*' as its only "
    "resource); the action reads metrics, it changes nothing"
)

XRAY_REASON = (
    "Active X-Ray tracing: xray:PutTraceSegments and xray:PutTelemetryRecords do not support "
    "resource-level permissions, so AWS requires Resource '*'."
)


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def table_resource_arns(table: dynamodb.ITable, spec: TableSpec) -> list[str]:
    """The table and each of its named indexes (no index/* wildcard)."""
    return [table.table_arn, *(f"{table.table_arn}/index/{index.name}" for index in spec.indexes)]


def function_name(stack_name: str, spec: FunctionSpec) -> str:
    """`<stack name>-<function name>`, within Lambda's 64-character limit."""
    suffix = "-" + spec.name.replace("_", "-")
    return stack_name[: 64 - len(suffix)] + suffix


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
        events: BillingEvents,
        environment_name: str,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
        xray_sdk: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        self._data = data
        self._xray_sdk = xray_sdk
        self._events = events
        self.functions: dict[str, lambda_.Function] = {}
        # Physical names of the NAMED_FUNCTIONS (the stack name keeps two stacks in one account apart).
        self.function_names: dict[str, str] = {
            spec.name: function_name(Stack.of(self).stack_name, spec) for spec in NAMED_FUNCTIONS
        }
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

        if runtime.name != LATEST_PYTHON_RUNTIME.name:
            for function in self.functions.values():  # on the functions only, not their log groups and roles
                acknowledge(
                    function,
                    "AwsSolutions-L1",
                    f"{runtime.name}, not {LATEST_PYTHON_RUNTIME.name}: the newest Python the build machines can "
                    "run, so CI imports and invokes every handler with the built layers on the very runtime Lambda "
                    "uses (make lambda-python); move up once a 3.14 interpreter can be had there",
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
            function_name=self.function_names.get(spec.name),
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
            **resources.FUNCTION_ENVIRONMENT,
        }
        if self._xray_sdk:
            # Powertools' Tracer then traces (LAMBDA_TASK_ROOT is set): the X-Ray SDK loads at cold start.
            del env[resources.TRACE_DISABLED_ENV]
        for table_spec in dict.fromkeys((*spec.reads, *spec.writes)):  # ordered: stable templates
            env[table_spec.env_var] = self._data.table(table_spec).table_name
        for queue_spec in spec.sends_to:
            env[queue_spec.env_var] = self._data.queue(queue_spec).queue_url
        if spec.sqs_source is not None and spec.sqs_source.sets_visibility:
            # The consumer postpones a failed message itself (ChangeMessageVisibility, part of what the event
            # source grants): it needs the queue's URL, not send rights.
            env[spec.sqs_source.queue.env_var] = self._data.queue(spec.sqs_source.queue).queue_url
        for bus in spec.publishes_to:
            env[bus.env_var] = self._events.bus.event_bus_name
        for queue_spec in spec.observes:
            env[queue_spec.env_var] = self._data.queue(queue_spec).queue_url
            env[queue_spec.dlq_env_var] = self._data.dead_letter_queue(queue_spec).queue_url
        if spec.needs_stripe_secrets:
            env.update(stripe.environment)
        env.update(spec.extra_env)
        return env

    def _grant(self, spec: FunctionSpec, role: iam.Role, stripe: StripeSecrets) -> None:
        scoped = ITEM_SCOPED_ACCESS.get(spec.name)
        for table_spec in spec.writes:
            if scoped is None:
                self._table_statement(role, table_spec, TABLE_WRITE_ACTIONS)
            else:
                self._item_scoped_statement(role, table_spec, scoped)
        for table_spec in spec.reads:
            if table_spec not in spec.writes:
                self._table_statement(role, table_spec, TABLE_READ_ACTIONS)
        for queue_spec in spec.sends_to:
            self._data.queue(queue_spec).grant_send_messages(role)
        if spec.publishes_to:
            self._events.grant_publish(role)
        if spec.needs_stripe_secrets:
            stripe.grant_read(role)
        observed = [self._data.queue(q).queue_arn for q in spec.observes]
        observed += [self._data.dead_letter_queue(q).queue_arn for q in spec.observes]
        if observed:
            # Depths only: no receive, no delete, no send.
            role.add_to_principal_policy(iam.PolicyStatement(actions=["sqs:GetQueueAttributes"], resources=observed))
        if spec.reads_metrics:
            role.add_to_principal_policy(
                iam.PolicyStatement(actions=["cloudwatch:GetMetricStatistics"], resources=["*"])
            )
            acknowledge(role, "AwsSolutions-IAM5[Resource::*]", METRICS_READ_REASON)

    def _item_scoped_statement(self, role: iam.Role, spec: TableSpec, access: ItemScopedAccess) -> None:
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=list(access.actions),
                resources=[self._data.table(spec).table_arn],
                # ForAllValues: every partition key the request touches must match (a GetItem names one).
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": list(access.leading_keys)}},
            )
        )

    def connect_usage_plan(self, usage_plan: apigw.IUsagePlan) -> None:
        """Give the USAGE_PLAN_KEY_MANAGERS the tenant usage plan's id (resources.USAGE_PLAN_ID_ENV) and the
        API Gateway control-plane calls auth.usage_plans makes, each on its own path. Called once the API
        (and so the plan) exists: the functions are built before it."""
        stack = Stack.of(self)

        def control_plane_arn(path: str) -> str:
            # arn:<partition>:apigateway:<region>::<path>: API Gateway resources have no account field.
            return f"arn:{stack.partition}:apigateway:{stack.region}::{path}"

        for spec in USAGE_PLAN_KEY_MANAGERS:
            function = self[spec]
            function.add_environment(resources.USAGE_PLAN_ID_ENV, usage_plan.usage_plan_id)
            role = function.role
            assert role is not None  # every function here gets its own role (_build)
            # No wildcard action or resource: no other usage plan, no API, no stage, no update or delete of a key.
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["apigateway:GET", "apigateway:POST"], resources=[control_plane_arn("/apikeys")]
                )
            )
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["apigateway:POST"],
                    resources=[control_plane_arn(f"/usageplans/{usage_plan.usage_plan_id}/keys")],
                )
            )

    def _table_statement(self, role: iam.Role, spec: TableSpec, actions: tuple[str, ...]) -> None:
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=list(actions),
                resources=table_resource_arns(self._data.table(spec), spec),
            )
        )
