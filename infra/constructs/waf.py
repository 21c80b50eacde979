"""A regional AWS WAF web ACL in front of the REST API stage.

Rules, in evaluation order:
0. RateLimitPerIp: blocks (429, the platform's error shape) a source IP sending more than
   resources.WAF_RATE_LIMIT_PER_IP requests in 5 minutes, except to the Stripe webhook.
1. AWSManagedRulesKnownBadInputsRuleSet (Log4j/Java deserialization probes, exploitable paths, localhost Host).
2. AWSManagedRulesCommonRuleSet (OWASP-style XSS/LFI/RFI/SSRF/size checks), with SizeRestrictions_BODY counted.

Both managed groups and the rate rule skip the Stripe webhook (a scope-down statement): Stripe's deliveries
are authenticated by the Stripe-Signature HMAC over the raw body, and their JSON carries strings we don't
control (customer names, descriptions, metadata), so a false positive in a body rule (XSS_BODY on a "<b>" in a
description, GenericRFI_BODY on a URL, Log4JRCE_BODY on "${jndi:" in metadata) or a 403 under a burst of
retried events would drop the delivery; Stripe retries for up to 3 days and then disables the endpoint.
Counting those rules for that path would keep the signal but needs a second reference to each group; the
webhook's own signature check is the control that matters there.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from aws_cdk.aws_wafv2 import CfnWebACL as WebAcl
from constructs import Construct

from billing_platform import resources

# Both the execute-api URL (/live/v1/webhooks/stripe) and a custom domain (/v1/webhooks/stripe, or under a
# base path) end with the route path, so the exemption matches the suffix. A request to another path with
# that suffix is answered by API Gateway itself (no such resource) and reaches no function.
STRIPE_WEBHOOK_PATH = resources.STRIPE_WEBHOOK.routes[0].path
RATE_LIMIT_WINDOW_SECONDS = 300
RATE_LIMITED_BODY_KEY = "rate_limited"
RATE_LIMITED_BODY = '{"code": "rate_limited", "message": "Too many requests from this address"}'
# Body rules counted rather than blocking, on every path the common rule set inspects: see _common_rule_set.
COUNTED_COMMON_RULES = ("SizeRestrictions_BODY",)
# Never written to WAF logs: tenant API keys (Authorization), operator SigV4 signatures, Stripe's signature.
REDACTED_HEADERS = ("authorization", "x-api-key", "stripe-signature")


def _visibility(metric_name: str) -> WebAcl.VisibilityConfigProperty:
    return WebAcl.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric_name, sampled_requests_enabled=True
    )


def not_the_stripe_webhook() -> WebAcl.StatementProperty:
    """Matches every request except those to the Stripe webhook path."""
    return WebAcl.StatementProperty(
        not_statement=WebAcl.NotStatementProperty(
            statement=WebAcl.StatementProperty(
                byte_match_statement=WebAcl.ByteMatchStatementProperty(
                    field_to_match=WebAcl.FieldToMatchProperty(uri_path={}),
                    positional_constraint="ENDS_WITH",
                    search_string=STRIPE_WEBHOOK_PATH,
                    text_transformations=[WebAcl.TextTransformationProperty(priority=0, type="NONE")],
                )
            )
        )
    )


def _managed_rule_group(name: str, priority: int, *, counted_rules: tuple[str, ...] = ()) -> WebAcl.RuleProperty:
    return WebAcl.RuleProperty(
        name=name,
        priority=priority,
        override_action=WebAcl.OverrideActionProperty(none={}),  # the group's own actions (Block) apply
        statement=WebAcl.StatementProperty(
            managed_rule_group_statement=WebAcl.ManagedRuleGroupStatementProperty(
                vendor_name="AWS",
                name=name,
                scope_down_statement=not_the_stripe_webhook(),
                rule_action_overrides=[
                    WebAcl.RuleActionOverrideProperty(name=rule, action_to_use=WebAcl.RuleActionProperty(count={}))
                    for rule in counted_rules
                ]
                or None,
            )
        ),
        visibility_config=_visibility(name),
    )


def _rate_limit_rule(priority: int) -> WebAcl.RuleProperty:
    return WebAcl.RuleProperty(
        name="RateLimitPerIp",
        priority=priority,
        action=WebAcl.RuleActionProperty(
            block=WebAcl.BlockActionProperty(
                custom_response=WebAcl.CustomResponseProperty(
                    response_code=429, custom_response_body_key=RATE_LIMITED_BODY_KEY
                )
            )
        ),
        statement=WebAcl.StatementProperty(
            rate_based_statement=WebAcl.RateBasedStatementProperty(
                aggregate_key_type="IP",
                limit=resources.WAF_RATE_LIMIT_PER_IP,
                evaluation_window_sec=RATE_LIMIT_WINDOW_SECONDS,
                # Stripe delivers from a few shared IPs and bursts (retries, invoice runs): never throttle it.
                scope_down_statement=not_the_stripe_webhook(),
            )
        ),
        visibility_config=_visibility("RateLimitPerIp"),
    )


class ApiFirewall(Construct):
    """A regional WAFv2 web ACL (default Allow; rate limit per IP, known bad inputs, common rule set, the
    Stripe webhook exempt) associated with `stage`, logging to a CloudWatch log group with credentials
    redacted."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: apigw.Stage,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.web_acl = WebAcl(
            self,
            "WebAcl",
            scope="REGIONAL",
            default_action=WebAcl.DefaultActionProperty(allow={}),
            description="Billing API - per-IP rate limit and AWS managed rules, the Stripe webhook exempt",
            custom_response_bodies={
                RATE_LIMITED_BODY_KEY: WebAcl.CustomResponseBodyProperty(
                    content_type="APPLICATION_JSON", content=RATE_LIMITED_BODY
                )
            },
            rules=[
                _rate_limit_rule(0),
                _managed_rule_group("AWSManagedRulesKnownBadInputsRuleSet", 1),
                # SizeRestrictions_BODY blocks bodies over 8 KB, but POST /v1/usage takes batches up to
                # resources.MAX_REQUEST_BODY_BYTES (256 KiB), which the API already bounds (413). Counted
                # rather than scoped down: a scope-down applies to the whole group, so excluding /v1/usage
                # would also drop its XSS/LFI/RFI checks; counting keeps those and the size metric.
                # The other body rules see the first 16 KB (API Gateway's default inspection size).
                _managed_rule_group("AWSManagedRulesCommonRuleSet", 2, counted_rules=COUNTED_COMMON_RULES),
            ],
            visibility_config=_visibility("BillingApiWebAcl"),
        )
        self.association = wafv2.CfnWebACLAssociation(
            self, "StageAssociation", resource_arn=stage.stage_arn, web_acl_arn=self.web_acl.attr_arn
        )
        # WAF requires the aws-waf-logs- prefix on a log group it delivers to.
        self.logs = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"aws-waf-logs-{stack.stack_name}",
            retention=log_retention,
            removal_policy=removal_policy,
        )
        self.logging = wafv2.CfnLoggingConfiguration(
            self,
            "Logging",
            resource_arn=self.web_acl.attr_arn,
            # WAF wants the log group's ARN without the ":*" suffix LogGroup.log_group_arn carries.
            log_destination_configs=[
                stack.format_arn(
                    service="logs",
                    resource="log-group",
                    resource_name=self.logs.log_group_name,
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
            ],
            redacted_fields=[
                # SingleHeader is untyped in the L1: CDK passes the dict through, so it is spelled as CloudFormation's.
                wafv2.CfnLoggingConfiguration.FieldToMatchProperty(single_header={"Name": header})
                for header in REDACTED_HEADERS
            ],
        )
