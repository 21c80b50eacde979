"""The REST API: every route of resources.routes() with the authorization its RouteSpec names.

- operator routes: IAM (SigV4) authorization; the handler sees requestContext.identity.userArn.
- tenant routes: a Lambda REQUEST authorizer (the `authorizer` function) on the Authorization header,
  results cached; its context carries principal_type / tenant_id / key_id.
- public routes (/health, the Stripe webhook): no API Gateway authorization; the webhook verifies the
  Stripe signature itself.
"""

from __future__ import annotations

import json

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from billing_platform import resources
from billing_platform.resources import Auth
from infra.constructs.functions import Functions
from infra.nag import acknowledge

STAGE_NAME = "live"
AUTHORIZER_CACHE_TTL = Duration.seconds(resources.AUTHORIZER_CACHE_TTL_SECONDS)

# Access log lines: who called what and how it ended; never headers or bodies (API keys, card data).
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "extendedRequestId": "$context.extendedRequestId",
        "ip": "$context.identity.sourceIp",
        "caller": "$context.identity.caller",
        "userArn": "$context.identity.userArn",
        "tenantId": "$context.authorizer.tenant_id",
        "requestTime": "$context.requestTime",
        "httpMethod": "$context.httpMethod",
        "resourcePath": "$context.resourcePath",
        "status": "$context.status",
        "protocol": "$context.protocol",
        "responseLength": "$context.responseLength",
        "integrationLatency": "$context.integrationLatency",
        "errorMessage": "$context.error.message",
        "xrayTraceId": "$context.xrayTraceId",
    }
)

# API Gateway's own rejections (authorizer deny, throttling, missing auth) in the platform's error shape.
GATEWAY_ERROR_CODES = {
    apigw.ResponseType.UNAUTHORIZED: "unauthenticated",
    apigw.ResponseType.ACCESS_DENIED: "forbidden",
    # The tenant's usage-plan key is missing or disabled (apiKeySource AUTHORIZER, api key required).
    apigw.ResponseType.INVALID_API_KEY: "forbidden",
    apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN: "not_found",
    apigw.ResponseType.THROTTLED: "rate_limited",
    apigw.ResponseType.QUOTA_EXCEEDED: "rate_limited",
    apigw.ResponseType.REQUEST_TOO_LARGE: "payload_too_large",
    apigw.ResponseType.DEFAULT_4_XX: "bad_request",
    apigw.ResponseType.DEFAULT_5_XX: "gateway_error",
}
# API Gateway answers a path (or a method) no route has with MISSING_AUTHENTICATION_TOKEN, a 403 by default;
# it is a 404 here, as its code says and as the local gateway answers an unknown route.
GATEWAY_ERROR_STATUS = {apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN.response_type: "404"}

PUBLIC_ROUTE_REASON = (
    "Public by design: /health is a liveness probe and the Stripe webhook authenticates each request "
    "by its Stripe-Signature HMAC over the raw body."
)
PREFLIGHT_REASON = (
    "CORS preflight (OPTIONS) on the routes a portal token reads: a MOCK answer with no data; the GET itself "
    "is authorized by the token, and only the token's allowed origins may read its answer."
)
NO_COGNITO_REASON = (
    "Callers are operators (IAM SigV4) and tenants (API keys checked by a Lambda authorizer); "
    "there are no end-user accounts for a Cognito user pool."
)
WAF_OFF_REASON = (
    "Deployed with -c waf=false: stage throttling, per-tenant usage-plan throttling and the authorizer "
    "protect the API; the operator chose to run without the stack's WAF web ACL (or attaches their own)."
)
CLOUDWATCH_ROLE_POLICY = "arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
CLOUDWATCH_ROLE_REASON = (
    "AmazonAPIGatewayPushToCloudWatchLogs is the AWS-managed policy API Gateway's account-level logging "
    "role needs for execution logs; it grants only log delivery."
)


def _construct_id(path: str) -> str:
    return "".join(part.strip("{}").replace("-", "").replace("_", "").title() for part in path.split("/"))


class Api(Construct):
    """The REST API, its stage (throttling, access and execution logging, X-Ray), the tenant authorizer,
    the request validator and the usage plan. `waf=False` acknowledges cdk-nag's APIG3 (no web ACL on the
    stage); the stack attaches infra.constructs.waf.ApiFirewall otherwise."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Functions,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
        require_api_keys: bool = True,
        waf: bool = True,
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = logs.LogGroup(self, "AccessLogs", retention=log_retention, removal_policy=removal_policy)
        self.rest_api = apigw.RestApi(
            self,
            "RestApi",
            description="Serverless SaaS billing API",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # The authorizer may return usageIdentifierKey: per-tenant usage-plan throttling without
            # clients sending an x-api-key header.
            api_key_source_type=apigw.ApiKeySourceType.AUTHORIZER,
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=removal_policy,
            deploy_options=apigw.StageOptions(
                stage_name=STAGE_NAME,
                throttling_rate_limit=resources.API_THROTTLE_RATE_LIMIT,
                throttling_burst_limit=resources.API_THROTTLE_BURST_LIMIT,
                tracing_enabled=True,
                metrics_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # would log full requests, API keys included
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.custom(ACCESS_LOG_FORMAT),
            ),
        )
        if not waf:  # with waf, infra.constructs.waf.ApiFirewall associates a web ACL with the stage
            acknowledge(self.rest_api, "AwsSolutions-APIG3", WAF_OFF_REASON)
        acknowledge(self.rest_api, "AwsSolutions-COG4", NO_COGNITO_REASON)
        acknowledge(self.rest_api, f"AwsSolutions-IAM4[Policy::{CLOUDWATCH_ROLE_POLICY}]", CLOUDWATCH_ROLE_REASON)
        self.validator = self.rest_api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )
        for response_type, code in GATEWAY_ERROR_CODES.items():
            self.rest_api.add_gateway_response(
                f"Gateway{response_type.response_type}",
                type=response_type,
                status_code=GATEWAY_ERROR_STATUS.get(response_type.response_type),
                templates={"application/json": f'{{"code": "{code}", "message": $context.error.messageString}}'},
                # Readable by the embedded widget on any origin (no data in them): billing_platform.api.cors.
                response_headers={"Access-Control-Allow-Origin": "'*'"},
            )
        self.authorizer = apigw.RequestAuthorizer(
            self,
            "TenantAuthorizer",
            handler=functions[resources.AUTHORIZER],
            identity_sources=[apigw.IdentitySource.header("Authorization")],
            results_cache_ttl=AUTHORIZER_CACHE_TTL,
        )
        self.methods: dict[tuple[str, str], apigw.Method] = {}
        integrations: dict[str, apigw.Integration] = {}
        for route, spec in resources.routes():
            function: lambda_.Function = functions[spec]
            name = functions.function_names.get(spec.name)
            if spec.name not in integrations:
                integrations[spec.name] = (
                    apigw.LambdaIntegration(function, allow_test_invoke=False)
                    if name is None
                    else self._integration_by_name(name)
                )
            resource = self.rest_api.root.resource_for_path(route.path)
            method = self._add_method(resource, route.method, route.auth, integrations[spec.name], require_api_keys)
            if name is not None:
                # What LambdaIntegration would add: API Gateway may invoke the function for this method only.
                function.add_permission(
                    f"ApiPermission{route.method}{_construct_id(route.path)}",
                    principal=iam.ServicePrincipal("apigateway.amazonaws.com"),
                    source_arn=method.method_arn,
                )
            self.methods[(route.method, route.path)] = method
        for path in sorted({r.path for entity in (False, True) for r in resources.portal_routes(entity=entity)}):
            # A MOCK integration: no function, no authorizer, no data (billing_platform.api.cors).
            preflight = self.rest_api.root.resource_for_path(path).add_cors_preflight(
                allow_origins=apigw.Cors.ALL_ORIGINS,
                allow_methods=["GET", "OPTIONS"],
                allow_headers=["Authorization", "Accept"],
                max_age=Duration.minutes(10),
            )
            acknowledge(preflight, "AwsSolutions-APIG4", PREFLIGHT_REASON)
        self.usage_plan = self.rest_api.add_usage_plan(
            "TenantUsagePlan",
            description="Per-tenant throttling; the authorizer names the tenant's key via usageIdentifierKey",
            throttle=apigw.ThrottleSettings(
                rate_limit=resources.TENANT_THROTTLE_RATE_LIMIT,
                burst_limit=resources.TENANT_THROTTLE_BURST_LIMIT,
            ),
            api_stages=[apigw.UsagePlanPerApiStage(api=self.rest_api, stage=self.rest_api.deployment_stage)],
        )

    def _integration_by_name(self, function_name: str) -> apigw.Integration:
        """A Lambda proxy integration whose URI names the function instead of referencing it: the methods
        (and the deployment holding them) then need not wait for the function, which itself waits for the
        usage plan that needs the deployed stage (infra.constructs.functions.NAMED_FUNCTIONS)."""
        function_arn = Stack.of(self).format_arn(
            service="lambda",
            resource="function",
            resource_name=function_name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        return apigw.AwsIntegration(
            service="lambda", proxy=True, path=f"2015-03-31/functions/{function_arn}/invocations"
        )

    def _add_method(
        self,
        resource: apigw.IResource,
        http_method: str,
        auth: Auth,
        integration: apigw.Integration,
        require_api_keys: bool,
    ) -> apigw.Method:
        if auth is Auth.OPERATOR:
            return resource.add_method(
                http_method,
                integration,
                authorization_type=apigw.AuthorizationType.IAM,
                request_validator=self.validator,
            )
        if auth is Auth.TENANT:
            return resource.add_method(
                http_method,
                integration,
                authorization_type=apigw.AuthorizationType.CUSTOM,
                authorizer=self.authorizer,
                request_validator=self.validator,
                request_parameters={"method.request.header.Authorization": True},
                # The per-tenant usage plan applies only to methods requiring an API key. The key is the
                # authorizer's usageIdentifierKey (apiKeySource AUTHORIZER); clients send no x-api-key.
                api_key_required=require_api_keys,
            )
        method = resource.add_method(
            http_method,
            integration,
            authorization_type=apigw.AuthorizationType.NONE,
            request_validator=self.validator,
        )
        acknowledge(method, "AwsSolutions-APIG4", PUBLIC_ROUTE_REASON)
        return method

    @property
    def url(self) -> str:
        return self.rest_api.url
