"""The REST API has exactly the routes of resources.routes(), each integrated with its function and guarded
as its RouteSpec says; the stage throttles and logs."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Template

from billing_platform import resources
from billing_platform.resources import Auth, FunctionSpec, RouteSpec
from infra.constructs.functions import NAMED_FUNCTIONS
from tests.infra.cfn import Synthesized, dependency_graph, find_cycle, references

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]

AUTHORIZATION_TYPE = {Auth.OPERATOR: "AWS_IAM", Auth.TENANT: "CUSTOM", Auth.PUBLIC: "NONE"}
ROUTES = [pytest.param(route, fn, id=f"{route.method} {route.path}") for route, fn in resources.routes()]


def _resource_paths(synthesized: Synthesized) -> dict[str, str]:
    """AWS::ApiGateway::Resource logical id -> full path, following ParentId up to the root."""
    nodes = {k: r["Properties"] for k, r in synthesized.of_type("AWS::ApiGateway::Resource").items()}
    paths: dict[str, str] = {}

    def path_of(logical_id: str) -> str:
        if logical_id not in paths:
            node = nodes[logical_id]
            parent = node["ParentId"]
            prefix = "" if "Fn::GetAtt" in parent else path_of(parent["Ref"])
            paths[logical_id] = f"{prefix}/{node['PathPart']}"
        return paths[logical_id]

    for logical_id in nodes:
        path_of(logical_id)
    return paths


@pytest.fixture(scope="module")
def methods(synthesized: Synthesized) -> dict[tuple[str, str], dict[str, Any]]:
    """(HTTP method, path) -> AWS::ApiGateway::Method properties."""
    paths = _resource_paths(synthesized)
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for method in synthesized.of_type("AWS::ApiGateway::Method").values():
        props = method["Properties"]
        resource = props["ResourceId"]
        path = "/" if "Fn::GetAtt" in resource else paths[resource["Ref"]]
        key = (props["HttpMethod"], path)
        assert key not in found, f"duplicate method {key}"
        found[key] = props
    return found


def test_the_api_has_exactly_the_routes_of_the_resource_definitions(
    methods: dict[tuple[str, str], dict[str, Any]],
) -> None:
    routes = {key for key in methods if key[0] != "OPTIONS"}
    assert routes == {(route.method, route.path) for route, _ in resources.routes()}
    # The only other methods: the CORS preflights of the routes a portal token reads (tests/infra/portal).
    preflights = {path for method, path in methods if method == "OPTIONS"}
    assert preflights == {r.path for entity in (False, True) for r in resources.portal_routes(entity=entity)}


@pytest.mark.parametrize(("route", "fn"), ROUTES)
def test_route_is_guarded_as_its_spec_says(
    synthesized: Synthesized, methods: dict[tuple[str, str], dict[str, Any]], route: RouteSpec, fn: FunctionSpec
) -> None:
    method = methods[(route.method, route.path)]
    assert method["AuthorizationType"] == AUTHORIZATION_TYPE[route.auth]
    if route.auth is Auth.TENANT:
        authorizer_id = synthesized.logical_id(synthesized.stack.api.authorizer)
        assert method["AuthorizerId"] == {"Ref": authorizer_id}
    else:
        assert "AuthorizerId" not in method


@pytest.mark.parametrize(("route", "fn"), ROUTES)
def test_route_proxies_to_its_function(
    synthesized: Synthesized, methods: dict[tuple[str, str], dict[str, Any]], route: RouteSpec, fn: FunctionSpec
) -> None:
    integration = methods[(route.method, route.path)]["Integration"]
    assert integration["Type"] == "AWS_PROXY"
    assert integration["IntegrationHttpMethod"] == "POST"
    functions = {ref for ref, _ in references(integration["Uri"]) if ref.startswith("Functions")}
    if fn in NAMED_FUNCTIONS:
        # Reached by name (no reference: it would close a cycle through the usage plan): the URI names
        # exactly the function's physical name.
        assert functions == set()
        name = synthesized.resources[synthesized.function_id(fn)]["Properties"]["FunctionName"]
        assert isinstance(name, str)
        assert str(integration["Uri"]).count(f":function:{name}/invocations") == 1
    else:
        assert functions == {synthesized.function_id(fn)}


@pytest.mark.parametrize(("route", "fn"), ROUTES)
def test_tenant_routes_require_the_api_key_the_authorizer_names(
    methods: dict[tuple[str, str], dict[str, Any]], route: RouteSpec, fn: FunctionSpec
) -> None:
    # Without ApiKeyRequired API Gateway applies no usage plan: per-tenant throttling would silently lapse.
    assert methods[(route.method, route.path)].get("ApiKeyRequired", False) is (route.auth is Auth.TENANT)


def test_api_key_source_is_the_authorizer(synthesized: Synthesized) -> None:
    (api,) = synthesized.of_type("AWS::ApiGateway::RestApi").values()
    # HEADER would make clients send x-api-key themselves; AUTHORIZER takes the authorizer's
    # usageIdentifierKey, the tenant's usage-plan key, which clients never see.
    assert api["Properties"]["ApiKeySourceType"] == "AUTHORIZER"


def test_tenant_usage_plan_throttles_the_deployed_stage_below_the_stage_limits(synthesized: Synthesized) -> None:
    (plan,) = synthesized.of_type("AWS::ApiGateway::UsagePlan").values()
    props = plan["Properties"]
    ((stage_id, _),) = references(props["ApiStages"][0]["Stage"])
    assert synthesized.resources[stage_id]["Type"] == "AWS::ApiGateway::Stage"
    assert 0 < props["Throttle"]["RateLimit"] < resources.API_THROTTLE_RATE_LIMIT
    assert 0 < props["Throttle"]["BurstLimit"] < resources.API_THROTTLE_BURST_LIMIT


def test_template_has_no_dependency_cycle(synthesized: Synthesized) -> None:
    # The api_keys function names the usage plan, which needs the deployed stage, which holds the methods:
    # CloudFormation refuses any cycle ("Circular dependency between resources") before creating anything.
    assert find_cycle(dependency_graph(synthesized.template)) is None


def test_tenant_authorizer_is_the_authorizer_function_on_the_authorization_header(
    synthesized: Synthesized,
) -> None:
    (authorizer,) = synthesized.of_type("AWS::ApiGateway::Authorizer").values()
    props = authorizer["Properties"]
    assert props["Type"] == "REQUEST"
    assert props["IdentitySource"] == "method.request.header.Authorization"
    assert props["AuthorizerResultTtlInSeconds"] == resources.AUTHORIZER_CACHE_TTL_SECONDS
    assert 0 < resources.AUTHORIZER_CACHE_TTL_SECONDS <= 300
    assert (synthesized.function_id(resources.AUTHORIZER), "Arn") in references(props["AuthorizerUri"])


def test_stage_throttles_logs_and_traces(synthesized: Synthesized) -> None:
    (stage,) = synthesized.of_type("AWS::ApiGateway::Stage").values()
    props = stage["Properties"]
    (settings,) = props["MethodSettings"]
    assert settings["ResourcePath"] == "/*"
    assert settings["HttpMethod"] == "*"
    assert settings["ThrottlingRateLimit"] == resources.API_THROTTLE_RATE_LIMIT
    assert settings["ThrottlingBurstLimit"] == resources.API_THROTTLE_BURST_LIMIT
    # Full request logging would write API keys and bodies to CloudWatch.
    assert settings["DataTraceEnabled"] is False
    assert props["TracingEnabled"] is True
    assert "DestinationArn" in props["AccessLogSetting"]
    assert "$context.requestId" in props["AccessLogSetting"]["Format"]


def test_gateway_errors_use_the_platform_error_shape(template: Template, synthesized: Synthesized) -> None:
    responses = synthesized.of_type("AWS::ApiGateway::GatewayResponse")
    types = {r["Properties"]["ResponseType"] for r in responses.values()}
    assert {"UNAUTHORIZED", "ACCESS_DENIED", "INVALID_API_KEY", "THROTTLED", "DEFAULT_4XX", "DEFAULT_5XX"} <= types
    for response in responses.values():
        assert '"code"' in response["Properties"]["ResponseTemplates"]["application/json"]


def test_an_unknown_route_is_a_404_not_found_deployed_as_locally(synthesized: Synthesized) -> None:
    from local_stack.gateway import Gateway, HttpRequest

    local = Gateway(lambda name, event: None, operator_token="unused").handle(HttpRequest("GET", "/no/such/route"))
    responses = synthesized.of_type("AWS::ApiGateway::GatewayResponse").values()
    missing = next(
        r["Properties"] for r in responses if r["Properties"]["ResponseType"] == "MISSING_AUTHENTICATION_TOKEN"
    )
    template = missing["ResponseTemplates"]["application/json"]
    assert (missing["StatusCode"], local.status) == ("404", 404)
    assert f'"code": "{local.json()["code"]}"' in template


def test_api_gateway_may_invoke_each_api_function(synthesized: Synthesized) -> None:
    api_functions = {fn.name: fn for _, fn in resources.routes()} | {resources.AUTHORIZER.name: resources.AUTHORIZER}
    invokable: set[str] = set()
    for permission in synthesized.of_type("AWS::Lambda::Permission").values():
        props = permission["Properties"]
        if props["Principal"] == "apigateway.amazonaws.com":
            invokable |= {ref for ref, _ in references(props["FunctionName"])}
    assert invokable == {synthesized.function_id(fn) for fn in api_functions.values()}
