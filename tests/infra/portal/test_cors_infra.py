"""Cross-origin reads in the synthesized API: each route a portal token reads has a CORS preflight that is a
MOCK answer (no function, no authorizer, no data) allowing GET with an Authorization header, no other route
has one, and API Gateway's own error answers carry Access-Control-Allow-Origin so an embedded widget can read
a 401 or a 429. The data answers themselves carry it only for a token's allowed origins (the functions)."""

from __future__ import annotations

from typing import Any

import pytest

from billing_platform import resources
from tests.infra.cfn import Synthesized

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]


def _preflights(synthesized: Synthesized) -> list[dict[str, Any]]:
    methods = synthesized.of_type("AWS::ApiGateway::Method").values()
    return [m["Properties"] for m in methods if m["Properties"]["HttpMethod"] == "OPTIONS"]


def test_each_portal_readable_route_has_a_mock_preflight_and_nothing_else_does(synthesized: Synthesized) -> None:
    preflights = _preflights(synthesized)
    readable = {r.path for entity in (False, True) for r in resources.portal_routes(entity=entity)}
    assert len(preflights) == len(readable)
    for method in preflights:
        assert method["AuthorizationType"] == "NONE"
        assert method["Integration"]["Type"] == "MOCK"
        (answer,) = method["Integration"]["IntegrationResponses"]
        headers = answer["ResponseParameters"]
        assert headers["method.response.header.Access-Control-Allow-Origin"] == "'*'"
        assert headers["method.response.header.Access-Control-Allow-Methods"] == "'GET,OPTIONS'"
        assert "Authorization" in headers["method.response.header.Access-Control-Allow-Headers"]


def test_the_gateways_own_errors_are_readable_by_the_embedded_widget(synthesized: Synthesized) -> None:
    for response in synthesized.of_type("AWS::ApiGateway::GatewayResponse").values():
        headers = response["Properties"]["ResponseParameters"]
        assert headers["gatewayresponse.header.Access-Control-Allow-Origin"] == "'*'"


def test_no_route_a_portal_token_cannot_read_answers_a_preflight() -> None:
    readable = {r.path for entity in (False, True) for r in resources.portal_routes(entity=entity)}
    writes = {route.path for route, _fn in resources.routes() if route.method != "GET"}
    assert "/v1/usage" in writes
    assert "/v1/usage" not in readable
    assert "/v1/tenants/{tenant_id}/grants" not in readable  # an operator route
