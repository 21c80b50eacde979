"""The API stage sits behind a regional WAF web ACL (per-IP rate limit, AWS managed rules) that never rate
limits or body-inspects the Stripe webhook; `-c waf=false` leaves the web ACL out and acknowledges cdk-nag's
APIG3 instead."""

from __future__ import annotations

import json
from typing import Any

import pytest

from billing_platform import resources
from billing_platform.resources import Auth
from infra.constructs.api import STAGE_NAME
from tests.infra.cfn import Synthesized, references, render, synth_with_context

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]

WEBHOOK_URIS = ["/live/v1/webhooks/stripe", "/v1/webhooks/stripe", "/billing/v1/webhooks/stripe"]
OTHER_URIS = ["/live/v1/usage", "/live/v1/entitlements/check", "/live/health", "/live/v1/webhooks", "/"]
MANAGED_GROUPS = ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet")


def _matches(statement: dict[str, Any], uri_path: str) -> bool:
    """Evaluates the subset of WAF statements the scope-downs use (Not, Or, And, ByteMatch on UriPath)."""
    if "NotStatement" in statement:
        return not _matches(statement["NotStatement"]["Statement"], uri_path)
    if "OrStatement" in statement:
        return any(_matches(inner, uri_path) for inner in statement["OrStatement"]["Statements"])
    if "AndStatement" in statement:
        return all(_matches(inner, uri_path) for inner in statement["AndStatement"]["Statements"])
    match = statement["ByteMatchStatement"]
    assert match["FieldToMatch"] == {"UriPath": {}}, match
    assert [t["Type"] for t in match["TextTransformations"]] == ["NONE"], match
    needle = match["SearchString"]
    outcome: bool = {
        "EXACTLY": uri_path == needle,
        "STARTS_WITH": uri_path.startswith(needle),
        "ENDS_WITH": uri_path.endswith(needle),
        "CONTAINS": needle in uri_path,
    }[match["PositionalConstraint"]]
    return outcome


@pytest.fixture(scope="module")
def web_acl(synthesized: Synthesized) -> tuple[str, dict[str, Any]]:
    ((logical_id, acl),) = synthesized.of_type("AWS::WAFv2::WebACL").items()
    return logical_id, acl["Properties"]


@pytest.fixture(scope="module")
def rules(web_acl: tuple[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {rule["Name"]: rule for rule in web_acl[1]["Rules"]}


def _scope_down(rule: dict[str, Any]) -> dict[str, Any]:
    statement = rule["Statement"]
    inner = statement.get("RateBasedStatement") or statement["ManagedRuleGroupStatement"]
    return dict(inner["ScopeDownStatement"])


def test_the_web_acl_is_regional_allows_by_default_and_publishes_metrics(
    web_acl: tuple[str, dict[str, Any]],
) -> None:
    _, props = web_acl
    assert props["Scope"] == "REGIONAL"  # a regional REST API stage; CLOUDFRONT would fail to associate
    assert props["DefaultAction"] == {"Allow": {}}
    assert props["VisibilityConfig"]["CloudWatchMetricsEnabled"] is True
    for rule in props["Rules"]:
        assert rule["VisibilityConfig"]["CloudWatchMetricsEnabled"] is True, rule["Name"]
        assert rule["VisibilityConfig"]["SampledRequestsEnabled"] is True, rule["Name"]
    names = [rule["VisibilityConfig"]["MetricName"] for rule in props["Rules"]]
    assert len(set(names)) == len(names)
    assert sorted(rule["Priority"] for rule in props["Rules"]) == list(range(len(props["Rules"])))


def test_the_web_acl_has_exactly_the_rate_rule_and_the_two_managed_groups(rules: dict[str, dict[str, Any]]) -> None:
    assert set(rules) == {"RateLimitPerIp", *MANAGED_GROUPS}
    # Floods are cut before the managed groups spend their capacity on them.
    assert rules["RateLimitPerIp"]["Priority"] < min(rules[name]["Priority"] for name in MANAGED_GROUPS)


def test_rate_rule_blocks_a_source_ip_above_the_limit_with_the_platform_error_shape(
    web_acl: tuple[str, dict[str, Any]], rules: dict[str, dict[str, Any]]
) -> None:
    rule = rules["RateLimitPerIp"]
    statement = rule["Statement"]["RateBasedStatement"]
    assert statement["AggregateKeyType"] == "IP"
    assert statement["Limit"] == resources.WAF_RATE_LIMIT_PER_IP
    assert statement["EvaluationWindowSec"] == 300
    response = rule["Action"]["Block"]["CustomResponse"]
    assert response["ResponseCode"] == 429
    body = web_acl[1]["CustomResponseBodies"][response["CustomResponseBodyKey"]]
    assert body["ContentType"] == "APPLICATION_JSON"
    assert json.loads(body["Content"])["code"] == "rate_limited"  # as API Gateway's own THROTTLED response


@pytest.mark.parametrize("group", MANAGED_GROUPS)
def test_managed_groups_are_aws_managed_and_keep_their_block_actions(
    rules: dict[str, dict[str, Any]], group: str
) -> None:
    rule = rules[group]
    statement = rule["Statement"]["ManagedRuleGroupStatement"]
    assert (statement["VendorName"], statement["Name"]) == ("AWS", group)
    # OverrideAction Count on the whole group would turn every rule into a no-op.
    assert rule["OverrideAction"] == {"None": {}}
    assert "ExcludedRules" not in statement


def test_common_rule_set_counts_only_the_8_kb_body_size_rule(rules: dict[str, dict[str, Any]]) -> None:
    # POST /v1/usage takes batches up to MAX_REQUEST_BODY_BYTES; SizeRestrictions_BODY would block them at 8 KB.
    assert resources.MAX_REQUEST_BODY_BYTES > 8 * 1024
    statement = rules["AWSManagedRulesCommonRuleSet"]["Statement"]["ManagedRuleGroupStatement"]
    assert statement["RuleActionOverrides"] == [{"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}}]
    assert (
        "RuleActionOverrides"
        not in rules["AWSManagedRulesKnownBadInputsRuleSet"]["Statement"]["ManagedRuleGroupStatement"]
    )


def test_the_exempt_path_is_the_stripe_webhook_route() -> None:
    (route,) = resources.STRIPE_WEBHOOK.routes
    assert (route.method, route.path, route.auth) == ("POST", "/v1/webhooks/stripe", Auth.PUBLIC)
    assert f"/{STAGE_NAME}{route.path}" in WEBHOOK_URIS


@pytest.mark.parametrize("rule_name", ["RateLimitPerIp", *MANAGED_GROUPS])
@pytest.mark.parametrize("uri", WEBHOOK_URIS)
def test_stripe_webhook_is_neither_rate_limited_nor_inspected(
    rules: dict[str, dict[str, Any]], rule_name: str, uri: str
) -> None:
    # Outside a rule's scope-down the rule neither counts nor blocks the request: Stripe's retried bursts
    # and its JSON (customer-entered strings) never meet the rate limit or the body rules.
    assert not _matches(_scope_down(rules[rule_name]), uri)


@pytest.mark.parametrize("rule_name", ["RateLimitPerIp", *MANAGED_GROUPS])
@pytest.mark.parametrize("uri", OTHER_URIS)
def test_every_other_path_is_rate_limited_and_inspected(
    rules: dict[str, dict[str, Any]], rule_name: str, uri: str
) -> None:
    assert _matches(_scope_down(rules[rule_name]), uri)


def test_the_web_acl_is_associated_with_the_live_stage_of_the_rest_api(
    synthesized: Synthesized, web_acl: tuple[str, dict[str, Any]]
) -> None:
    ((_, association),) = synthesized.of_type("AWS::WAFv2::WebACLAssociation").items()
    props = association["Properties"]
    assert props["WebACLArn"] == {"Fn::GetAtt": [web_acl[0], "Arn"]}
    rest_api_id = synthesized.logical_id(synthesized.stack.api.rest_api)
    stage_id = synthesized.logical_id(synthesized.stack.api.rest_api.deployment_stage)
    assert synthesized.resources[stage_id]["Properties"]["StageName"] == STAGE_NAME
    arn = render(
        props["ResourceArn"],
        {"AWS::Partition": "aws", "AWS::Region": "eu-west-1", rest_api_id: "abc123", stage_id: STAGE_NAME},
    )
    assert arn == f"arn:aws:apigateway:eu-west-1::/restapis/abc123/stages/{STAGE_NAME}"
    # A Ref to the stage (not the literal name) makes CloudFormation create the stage before associating.
    assert (stage_id, "Ref") in references(props["ResourceArn"])


def test_waf_logs_go_to_an_aws_waf_logs_group_with_credentials_redacted(
    synthesized: Synthesized, web_acl: tuple[str, dict[str, Any]]
) -> None:
    ((_, logging),) = synthesized.of_type("AWS::WAFv2::LoggingConfiguration").items()
    props = logging["Properties"]
    assert props["ResourceArn"] == {"Fn::GetAtt": [web_acl[0], "Arn"]}
    (destination_id,) = {target for target, _ in references(props["LogDestinationConfigs"][0])} & set(
        synthesized.resources
    )
    group = synthesized.resources[destination_id]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["LogGroupName"].startswith("aws-waf-logs-")  # WAF refuses any other name
    arn = render(
        props["LogDestinationConfigs"][0],
        {
            "AWS::Partition": "aws",
            "AWS::Region": "eu-west-1",
            "AWS::AccountId": "123456789012",
            destination_id: group["Properties"]["LogGroupName"],
        },
    )
    # WAF rejects the ":*" suffix of LogGroup.log_group_arn.
    assert arn == f"arn:aws:logs:eu-west-1:123456789012:log-group:{group['Properties']['LogGroupName']}"
    redacted = {field["SingleHeader"]["Name"].lower() for field in props["RedactedFields"]}
    assert {"authorization", "stripe-signature", "x-api-key"} <= redacted


def test_with_the_waf_apig3_is_not_acknowledged(synthesized: Synthesized) -> None:
    for resource in synthesized.resources.values():
        rules_ = resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
        assert "AwsSolutions-APIG3" not in {rule["id"] for rule in rules_}


@pytest.fixture(scope="module")
def without_waf(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The template of `cdk synth -c waf=false`; the synth raises on any unacknowledged cdk-nag finding."""
    return synth_with_context(tmp_path_factory.mktemp("cdk-no-waf"), waf="false")


def test_waf_false_leaves_out_the_web_acl_and_acknowledges_apig3(without_waf: dict[str, Any]) -> None:
    types = {resource["Type"] for resource in without_waf["Resources"].values()}
    assert not {t for t in types if t.startswith("AWS::WAFv2::")}
    acknowledged = {
        (resource["Type"], rule["id"])
        for resource in without_waf["Resources"].values()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    }
    assert ("AWS::ApiGateway::RestApi", "AwsSolutions-APIG3") in acknowledged
