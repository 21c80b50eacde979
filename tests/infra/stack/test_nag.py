"""cdk-nag's AwsSolutions checks run on every synth and find nothing unacknowledged; each acknowledgment
is one of the reviewed ones below and carries its reason into the template."""

from __future__ import annotations

from typing import Any

import pytest

from billing_platform import resources
from infra.nag import acknowledge, add_checks
from tests.infra.cfn import Synthesized

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]

# Every acknowledged rule, reviewed. A new one fails here until someone reads its reason and adds it.
REVIEWED_ACKNOWLEDGMENTS = {
    "AwsSolutions-APIG3",  # only with -c waf=false (tests/infra/api/test_waf.py); by default a web ACL guards the stage
    "AwsSolutions-APIG4",  # /health and the Stripe webhook are public (webhook: signature on the body)
    "AwsSolutions-COG4",  # operators use IAM, tenants API keys: no Cognito users
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
    "AwsSolutions-IAM5[Resource::*]",  # X-Ray and dynamodb:ListStreams have no resource-level permissions
    "AwsSolutions-L1",  # python3.13: the newest runtime CI can run the handlers on (make lambda-python)
    "AwsSolutions-SMG4",  # Stripe keys are rolled in Stripe, not by a rotation Lambda
    "AwsSolutions-SQS3",  # the stream's on-failure queue is itself a dead-letter queue
}


def _acknowledgments(synthesized: Synthesized) -> list[tuple[str, str, str]]:
    found = []
    for logical_id, resource in synthesized.resources.items():
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
            found.append((logical_id, rule["id"], rule["reason"]))
    return found


def test_synth_passes_the_aws_solutions_checks(synthesized: Synthesized) -> None:
    assert synthesized.validation_error is None, str(synthesized.validation_error)
    reports = synthesized.validation_report.get("pluginReports", [])
    violations = [v for report in reports for v in report.get("violations", [])]
    assert violations == []


def test_only_reviewed_rules_are_acknowledged_each_with_a_reason(synthesized: Synthesized) -> None:
    acknowledgments = _acknowledgments(synthesized)
    assert acknowledgments, "write_suppressions_to_cloud_formation should record acknowledgments"
    for logical_id, rule_id, reason in acknowledgments:
        assert rule_id in REVIEWED_ACKNOWLEDGMENTS, (logical_id, rule_id)
        assert len(reason) >= 40, (logical_id, rule_id)


def test_tables_functions_and_the_usage_queues_pass_without_acknowledgments(synthesized: Synthesized) -> None:
    types = {"AWS::DynamoDB::Table", "AWS::Lambda::Function", "AWS::Lambda::LayerVersion"}
    usage_queues = {synthesized.queue_id(resources.USAGE_QUEUE), synthesized.dlq_id(resources.USAGE_QUEUE)}
    for logical_id, rule_id, _ in _acknowledgments(synthesized):
        if rule_id == "AwsSolutions-L1":  # the runtime choice, on each function (and what the CDK nests in it)
            kind = synthesized.resources[logical_id]["Type"]
            assert kind.startswith("AWS::Lambda::"), logical_id
            assert kind != "AWS::Lambda::LayerVersion", logical_id
            continue
        assert synthesized.resources[logical_id]["Type"] not in types, (logical_id, rule_id)
        assert logical_id not in usage_queues, (logical_id, rule_id)


def _tiny_app(tmp_path: Any, *, acknowledged: bool) -> Any:
    import aws_cdk as cdk
    from aws_cdk import aws_sqs as sqs

    app = cdk.App(outdir=str(tmp_path))
    add_checks(app)
    stack = cdk.Stack(app, "Tiny")
    queue = sqs.Queue(stack, "Plain")  # no dead-letter queue, plain HTTP allowed: SQS3 and SQS4
    if acknowledged:
        acknowledge(queue, "AwsSolutions-SQS3", "a test queue that only proves acknowledgments reach cdk-nag")
        acknowledge(queue, "AwsSolutions-SQS4", "a test queue that only proves acknowledgments reach cdk-nag")
    return app


def test_a_finding_fails_the_synth(tmp_path: Any) -> None:
    # Proves the checks are wired: an empty report could also mean they never ran.
    with pytest.raises(Exception, match="ValidationFailed"):
        _tiny_app(tmp_path, acknowledged=False).synth()
    report = (tmp_path / "validation-report.json").read_text()
    assert "AwsSolutions-SQS3" in report
    assert "AwsSolutions-SQS4" in report


def test_an_acknowledged_finding_passes_the_synth(tmp_path: Any) -> None:
    _tiny_app(tmp_path, acknowledged=True).synth()


def test_an_acknowledgment_without_a_real_reason_is_refused() -> None:
    import aws_cdk as cdk

    with pytest.raises(ValueError, match="real reason"):
        acknowledge(cdk.App(), "AwsSolutions-SQS3", "because")


def test_a_stack_bound_to_an_account_and_region_passes_too(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # `make synth` binds the stack to an environment: some ARNs then carry the region as a literal and
    # cdk-nag names their findings differently than in the environment-agnostic template above.
    from infra.app import build_app, project_context

    monkeypatch.setenv("CDK_DEFAULT_ACCOUNT", "123456789012")
    monkeypatch.setenv("CDK_DEFAULT_REGION", "eu-west-1")
    layer_dirs = {}
    for layer in resources.DependencyLayer:
        (tmp_path / "layers" / layer.value / "python").mkdir(parents=True)
        layer_dirs[layer] = tmp_path / "layers" / layer.value
    app, stack = build_app(dependency_layer_dirs=layer_dirs, outdir=str(tmp_path / "out"), context=project_context())
    assert stack.region == "eu-west-1"
    app.synth()  # raises on any unacknowledged finding
