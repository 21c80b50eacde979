"""Each Lambda as its FunctionSpec says (runtime, layers, memory, timeout, logs, environment), and its role
holding only what the spec names: no wildcard action, tables / queues / secrets scoped to the right ARNs."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aws_cdk.assertions import Template

from billing_platform import resources
from billing_platform.resources import DependencyLayer, FunctionSpec
from infra.dependency_layers import LAMBDA_PYTHON_VERSION
from tests.infra.cfn import Synthesized, as_list, function_specs, references, statements_of_role

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]

DYNAMODB_WRITE_ACTIONS = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}
DYNAMODB_STREAM_ACTIONS = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"}
SECRET_READ_ACTIONS = {"secretsmanager:GetSecretValue"}
SECRET_LOOKING = re.compile(r"(sk|rk|pk)_(live|test)_|whsec_|\{\{resolve:secretsmanager", re.IGNORECASE)


def _function(synthesized: Synthesized, spec: FunctionSpec) -> dict[str, Any]:
    properties: dict[str, Any] = synthesized.resources[synthesized.function_id(spec)]["Properties"]
    return properties


def _statements(synthesized: Synthesized, spec: FunctionSpec) -> list[dict[str, Any]]:
    return statements_of_role(synthesized, synthesized.role_id(spec))


def _actions(statement: dict[str, Any]) -> set[str]:
    return set(as_list(statement["Action"]))


def _targets(statement: dict[str, Any]) -> set[tuple[str, str]]:
    return references(statement["Resource"])


# ------------------------------------------------------------------------------------------ functions


def test_one_function_per_spec_and_nothing_else(template: Template) -> None:
    # No CDK-provided helper Lambdas (log retention, bucket notifications ...) sneak in.
    template.resource_count_is("AWS::Lambda::Function", len(resources.FUNCTIONS))


def test_runtime_is_python_3_12_or_newer_and_the_one_the_layers_are_built_for(synthesized: Synthesized) -> None:
    runtimes = {fn["Properties"]["Runtime"] for fn in synthesized.of_type("AWS::Lambda::Function").values()}
    assert runtimes == {f"python{LAMBDA_PYTHON_VERSION}"}
    major, minor = (int(part) for part in LAMBDA_PYTHON_VERSION.split("."))
    assert (major, minor) >= (3, 12)


@pytest.mark.parametrize("spec", function_specs())
def test_function_settings_follow_the_spec(synthesized: Synthesized, spec: FunctionSpec) -> None:
    fn = _function(synthesized, spec)
    assert fn["MemorySize"] == spec.memory_mb
    assert fn["Timeout"] == spec.timeout_seconds
    assert fn["Handler"] == "handler.handler"
    assert fn["TracingConfig"] == {"Mode": "Active"}
    assert fn["Architectures"] == ["x86_64"]
    assert fn["Description"] == spec.description


@pytest.mark.parametrize("spec", function_specs())
def test_function_gets_its_dependency_layers_and_the_library_only(synthesized: Synthesized, spec: FunctionSpec) -> None:
    layers = synthesized.stack.layers
    expected = {synthesized.logical_id(layers.core_library)} | {
        synthesized.logical_id(layers.dependencies[layer]) for layer in spec.dependency_layers
    }
    got = {ref for ref, _ in references(_function(synthesized, spec)["Layers"])}
    assert got == expected
    stripe_layer = synthesized.logical_id(layers.dependencies[DependencyLayer.STRIPE])
    # stripe costs ~200 ms of cold start: only functions that call Stripe carry it.
    assert (stripe_layer in got) == (DependencyLayer.STRIPE in spec.dependency_layers)


@pytest.mark.parametrize("spec", function_specs())
def test_function_logs_to_its_own_log_group_with_retention(synthesized: Synthesized, spec: FunctionSpec) -> None:
    log_group = references(_function(synthesized, spec)["LoggingConfig"]["LogGroup"])
    ((group_id, _),) = log_group
    group = synthesized.resources[group_id]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == 30


@pytest.mark.parametrize("spec", function_specs())
def test_environment_names_exactly_the_tables_and_queues_of_the_spec(
    synthesized: Synthesized, spec: FunctionSpec
) -> None:
    env = _function(synthesized, spec)["Environment"]["Variables"]
    tables = {table.env_var: synthesized.table_id(table) for table in (*spec.reads, *spec.writes)}
    queues = {queue.env_var: synthesized.queue_id(queue) for queue in (*spec.sends_to, *spec.observes)}
    if spec.sqs_source and spec.sqs_source.sets_visibility:
        queues[spec.sqs_source.queue.env_var] = synthesized.queue_id(spec.sqs_source.queue)
    for var, table_id in tables.items():
        assert env[var] == {"Ref": table_id}
    for var, queue_id in queues.items():
        assert env[var] == {"Ref": queue_id}
    table_vars = {t.env_var for t in resources.TABLES}
    queue_vars = {q.env_var for q in resources.QUEUES}
    assert {v for v in env if v in table_vars} == set(tables)
    assert {v for v in env if v in queue_vars} == set(queues)


@pytest.mark.parametrize("spec", function_specs())
def test_stripe_secrets_reach_functions_as_arns_never_as_values(synthesized: Synthesized, spec: FunctionSpec) -> None:
    env = _function(synthesized, spec)["Environment"]["Variables"]
    secrets = synthesized.stack.stripe
    if spec.needs_stripe_secrets:
        assert env[resources.STRIPE_API_KEY_SECRET_ENV] == {"Ref": synthesized.logical_id(secrets.api_key)}
        assert env[resources.STRIPE_WEBHOOK_SECRET_ENV] == {"Ref": synthesized.logical_id(secrets.webhook_secret)}
    else:
        assert resources.STRIPE_API_KEY_SECRET_ENV not in env
        assert resources.STRIPE_WEBHOOK_SECRET_ENV not in env
    for name, value in env.items():
        # A `{{resolve:secretsmanager:...}}` reference would put the plain value into the function config.
        assert not SECRET_LOOKING.search(str(value)), name
        assert name not in ("STRIPE_SECRET_KEY", "STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET"), name


@pytest.mark.parametrize("spec", function_specs())
def test_only_the_api_keys_function_knows_the_tenant_usage_plan(synthesized: Synthesized, spec: FunctionSpec) -> None:
    env = _function(synthesized, spec)["Environment"]["Variables"]
    if spec is resources.API_KEYS:
        plan_id = synthesized.logical_id(synthesized.stack.api.usage_plan)
        assert env[resources.USAGE_PLAN_ID_ENV] == {"Ref": plan_id}
    else:
        assert resources.USAGE_PLAN_ID_ENV not in env


def test_secrets_are_generated_never_written_into_the_template(synthesized: Synthesized) -> None:
    secrets = synthesized.of_type("AWS::SecretsManager::Secret")
    assert len(secrets) == 2
    for secret in secrets.values():
        assert "SecretString" not in secret["Properties"]
        assert "GenerateSecretString" in secret["Properties"]


# ------------------------------------------------------------------------------------------ IAM


def _identity_statements(synthesized: Synthesized) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for logical_id, role in synthesized.of_type("AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            found.extend((logical_id, s) for s in as_list(policy["PolicyDocument"]["Statement"]))
    for policy_type in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for logical_id, policy in synthesized.of_type(policy_type).items():
            found.extend((logical_id, s) for s in as_list(policy["Properties"]["PolicyDocument"]["Statement"]))
    return found


def test_no_identity_policy_allows_a_wildcard_action(synthesized: Synthesized) -> None:
    statements = _identity_statements(synthesized)
    assert statements
    for owner, statement in statements:
        assert statement["Effect"] == "Allow", owner
        for action in _actions(statement):
            service, _, name = action.partition(":")
            assert service, (owner, action)
            assert name, (owner, action)
            assert "*" not in action, (owner, action)


@pytest.mark.parametrize("spec", function_specs())
def test_resource_star_only_for_actions_without_resource_level_permissions(
    synthesized: Synthesized, spec: FunctionSpec
) -> None:
    allowed_on_star = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
    if spec.stream_source:
        allowed_on_star.add("dynamodb:ListStreams")
    if spec.reads_metrics:
        allowed_on_star.add("cloudwatch:GetMetricStatistics")  # CloudWatch has no resource-level permission
    for statement in _statements(synthesized, spec):
        if "*" in as_list(statement["Resource"]):
            assert _actions(statement) <= allowed_on_star


@pytest.mark.parametrize("spec", function_specs())
def test_dynamodb_access_is_scoped_to_the_tables_of_the_spec(synthesized: Synthesized, spec: FunctionSpec) -> None:
    readable = {synthesized.table_id(t) for t in (*spec.reads, *spec.writes)}
    writable = {synthesized.table_id(t) for t in spec.writes}
    stream_table = synthesized.table_id(spec.stream_source.table) if spec.stream_source else None
    granted_tables: set[str] = set()
    for statement in _statements(synthesized, spec):
        actions = {a for a in _actions(statement) if a.startswith("dynamodb:")}
        if not actions or statement["Resource"] == "*":
            continue
        targets = _targets(statement)
        if actions <= DYNAMODB_STREAM_ACTIONS:
            assert targets == {(stream_table, "StreamArn")}
            continue
        assert not actions & DYNAMODB_STREAM_ACTIONS
        assert {attribute for _, attribute in targets} == {"Arn"}, "table ARNs only (no stream or foreign ARN)"
        tables = {logical_id for logical_id, _ in targets}
        assert tables <= readable, f"{spec.name} may not touch {tables - readable}"
        if actions & DYNAMODB_WRITE_ACTIONS:
            assert tables <= writable, f"{spec.name} may not write {tables - writable}"
        granted_tables |= tables
    assert granted_tables == readable


@pytest.mark.parametrize("spec", function_specs())
def test_table_grants_name_each_index_instead_of_a_wildcard(synthesized: Synthesized, spec: FunctionSpec) -> None:
    for statement in _statements(synthesized, spec):
        if any(a.startswith("dynamodb:") for a in _actions(statement)):
            assert "/index/*" not in str(statement["Resource"])
            assert "/stream/*" not in str(statement["Resource"])


@pytest.mark.parametrize("spec", function_specs())
def test_sqs_send_only_to_the_queues_the_spec_sends_to(synthesized: Synthesized, spec: FunctionSpec) -> None:
    allowed = {synthesized.queue_id(q) for q in spec.sends_to}
    if spec.stream_source:
        # Lambda sends the stream's failed-batch records to the on-failure queue with the function's role.
        allowed.add(synthesized.logical_id(synthesized.stack.usage_pipeline.stream_failures[spec.name]))
    sent_to: set[str] = set()
    for statement in _statements(synthesized, spec):
        if "sqs:SendMessage" in _actions(statement):
            sent_to |= {logical_id for logical_id, _ in _targets(statement)}
    assert sent_to == allowed


@pytest.mark.parametrize("spec", function_specs())
def test_sqs_receive_only_from_the_event_source_queue(synthesized: Synthesized, spec: FunctionSpec) -> None:
    expected = {synthesized.queue_id(spec.sqs_source.queue)} if spec.sqs_source else set()
    received: set[str] = set()
    for statement in _statements(synthesized, spec):
        if _actions(statement) & {"sqs:ReceiveMessage", "sqs:DeleteMessage"}:
            received |= {logical_id for logical_id, _ in _targets(statement)}
    assert received == expected


@pytest.mark.parametrize("spec", function_specs())
def test_secret_read_only_for_functions_that_need_stripe(synthesized: Synthesized, spec: FunctionSpec) -> None:
    secrets = synthesized.stack.stripe
    expected = (
        {synthesized.logical_id(secrets.api_key), synthesized.logical_id(secrets.webhook_secret)}
        if spec.needs_stripe_secrets
        else set()
    )
    readable: set[str] = set()
    for statement in _statements(synthesized, spec):
        if _actions(statement) & SECRET_READ_ACTIONS:
            readable |= {logical_id for logical_id, _ in _targets(statement)}
    assert readable == expected


@pytest.mark.parametrize("spec", function_specs())
def test_each_function_has_its_own_role_without_managed_policies(synthesized: Synthesized, spec: FunctionSpec) -> None:
    role = synthesized.resources[synthesized.role_id(spec)]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
    # AWSLambdaBasicExecutionRole would allow logs on every log group of the account.
    assert not role.get("ManagedPolicyArns")
    roles = [synthesized.role_id(other) for other in resources.FUNCTIONS]
    assert roles.count(synthesized.role_id(spec)) == 1
