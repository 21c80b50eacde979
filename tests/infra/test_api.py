"""The REST API has exactly the routes of resources.routes(), each integrated with its function and guarded
as its RouteSpec says; the stage throttles and logs."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Template

from billing_platform import resources
from billing_platform.resources import Auth, FunctionSpec, RouteSpec
from tests.infra.cfn import Synthesized, references

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
    assert set(methods) == {(route.method, route.path) for route, _ in resources.routes()}


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
    assert functions == {synthesized.function_id(fn)}


def test_tenant_authorizer_is_the_authorizer_function_on_the_authorization_header(
    synthesized: Synthesized,
) -> None:
    (authorizer,) = synthesized.of_type("AWS::ApiGateway::Authorizer").values()
    props = authorizer["Properties"]
    assert props["Type"] == "REQUEST"
    assert props["IdentitySource"] == "method.request.header.Authorization"
    assert 0 < props["AuthorizerResultTtlInSeconds"] <= 300
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
    assert {"UNAUTHORIZED", "ACCESS_DENIED", "THROTTLED", "DEFAULT_4XX", "DEFAULT_5XX"} <= types
    for response in responses.values():
        assert '"code"' in response["Properties"]["ResponseTemplates"]["application/json"]


def test_api_gateway_may_invoke_each_api_function(synthesized: Synthesized) -> None:
    api_functions = {fn.name: fn for _, fn in resources.routes()} | {resources.AUTHORIZER.name: resources.AUTHORIZER}
    invokable: set[str] = set()
    for permission in synthesized.of_type("AWS::Lambda::Permission").values():
        props = permission["Properties"]
        if props["Principal"] == "apigateway.amazonaws.com":
            invokable |= {ref for ref, _ in references(props["FunctionName"])}
    assert invokable == {synthesized.function_id(fn) for fn in api_functions.values()}
