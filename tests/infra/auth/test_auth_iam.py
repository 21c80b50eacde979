"""The authorizer's and the api_keys function's grants are exactly what their code calls. Each test runs
the real code (auth.authorizer, auth.keys, auth.usage_plans) against moto, records every AWS request it
makes, and checks the synthesized policy allows each one and grants nothing that none of them uses."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
)

from billing_platform import resources
from billing_platform.auth.authorizer import TenantKeyAuthorizer
from billing_platform.auth.caller import Actor
from billing_platform.auth.repository import ApiKeyRepository
from billing_platform.auth.service import ApiKeyService
from billing_platform.auth.usage_plans import UsagePlanKeys
from billing_platform.errors import UnauthorizedError
from billing_platform.portal.models import MintPortalToken
from billing_platform.portal.repository import PortalTokenRepository
from billing_platform.portal.service import PortalTokenService
from billing_platform.resources import FunctionSpec
from tests.factories.authorizer import authorizer_event, bearer
from tests.infra.cfn import Synthesized, as_list, function_specs, references, render, statements_of_role

OPERATOR = Actor("operator:test")

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]

REGION = "us-east-1"
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": "123456789012"}


def _string_like(pattern: str, value: str) -> bool:
    # IAM StringLike: `*` any run of characters, `?` exactly one.
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value) is not None


def _statements(synthesized: Synthesized, spec: FunctionSpec, service: str) -> list[dict[str, Any]]:
    return [
        s
        for s in statements_of_role(synthesized, synthesized.role_id(spec))
        if any(a.startswith(f"{service}:") for a in as_list(s["Action"]))
    ]


# ------------------------------------------------------------------------------------------ authorizer


def _authorizer_calls(moto_aws: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """Every DynamoDB request of the authorizer for: a key's first use, a second use within a minute, a
    revoked key, an unknown key; a portal token's use."""
    created = ApiKeyService().create("t_a", name="ci", actor=OPERATOR)
    portal = PortalTokenService().mint(MintPortalToken("t_a"), actor=OPERATOR)
    calls: list[tuple[str, dict[str, Any]]] = []
    client = boto3.client("dynamodb", region_name=REGION)
    client.meta.events.register(
        "before-parameter-build.dynamodb.*", lambda params, model, **_: calls.append((model.name, dict(params)))
    )
    authorizer = TenantKeyAuthorizer(
        service=ApiKeyService(repository=ApiKeyRepository(client=client)),
        portal=PortalTokenService(repository=PortalTokenRepository(client=client)),
    )

    def authorize(secret: str, now: datetime) -> None:
        event = APIGatewayAuthorizerRequestEvent(authorizer_event("POST", "/v1/usage", authorization=bearer(secret)))
        authorizer.authorize(event, now=now)

    now = datetime.now(UTC)
    authorize(portal.secret, now)
    assert calls[-1][1]["Key"]["pk"]["S"].startswith("PORTALTOKEN#")
    authorize(created.secret, now)
    authorize(created.secret, now + timedelta(seconds=5))
    ApiKeyService().revoke("t_a", created.key.key_id, actor=OPERATOR)
    unknown = created.secret[:-4] + ("AAAA" if not created.secret.endswith("AAAA") else "BBBB")
    for secret in (created.secret, unknown):
        with pytest.raises(UnauthorizedError):
            authorize(secret, now + timedelta(minutes=5))
    return calls


def test_authorizer_may_get_and_update_api_key_and_portal_token_items_only(
    synthesized: Synthesized, moto_aws: dict[str, str]
) -> None:
    calls = _authorizer_calls(moto_aws)
    assert {name for name, _ in calls} == {"GetItem", "UpdateItem"}  # the test saw the whole code path
    (statement,) = _statements(synthesized, resources.AUTHORIZER, "dynamodb")
    table_id = synthesized.table_id(resources.BILLING_TABLE)
    # The base table only (no index ARN): the authorizer never queries gsi1.
    assert statement["Resource"] == {"Fn::GetAtt": [table_id, "Arn"]}
    assert set(as_list(statement["Action"])) == {"dynamodb:GetItem", "dynamodb:UpdateItem"}
    patterns = statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    assert set(statement["Condition"]) == {"ForAllValues:StringLike"}
    for name, params in calls:
        assert params["TableName"] == moto_aws[resources.BILLING_TABLE.env_var]
        assert "IndexName" not in params
        assert f"dynamodb:{name}" in as_list(statement["Action"])
        pk = params["Key"]["pk"]["S"]
        assert any(_string_like(p, pk) for p in patterns), (name, pk)
    # And the condition does bite: the id -> hash pointers, tenant data and audit entries are out of reach.
    for other in ("APIKEYID#key_0123456789abcdef", "TENANT#t_a", "AUDIT#t_a", "SUBSCRIPTION#t_a"):
        assert not any(_string_like(p, other) for p in patterns), other


# ------------------------------------------------------------------------------------------ api_keys


def _control_plane_calls(moto_aws: dict[str, str]) -> tuple[str, set[tuple[str, str]], set[str]]:
    """(plan id, every (HTTP method, path) UsagePlanKeys sends, the tag keys it sets) for a new tenant, the
    same tenant again (already in the plan) and a second tenant."""
    apigw = boto3.client("apigateway", region_name=REGION)
    api = apigw.create_rest_api(name="billing")
    plan = apigw.create_usage_plan(name="tenants", throttle={"rateLimit": 100, "burstLimit": 200})
    apigw.update_usage_plan(
        usagePlanId=plan["id"], patchOperations=[{"op": "add", "path": "/apiStages", "value": f"{api['id']}:live"}]
    )
    calls: set[tuple[str, str]] = set()
    tag_keys: set[str] = set()

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.add((params["method"], params["url_path"]))
        tag_keys.update(json.loads(params["body"] or b"{}").get("tags", {}))

    client = boto3.client("apigateway", region_name=REGION)
    client.meta.events.register("before-call.api-gateway.*", record)
    keys = UsagePlanKeys(plan["id"], client=client)
    for tenant in ("t_a", "t_a", "t_b"):
        keys.ensure_tenant(tenant)
    return plan["id"], calls, tag_keys


def test_api_keys_function_may_make_exactly_the_usage_plan_calls(
    synthesized: Synthesized, moto_aws: dict[str, str]
) -> None:
    plan_id, calls, tag_keys = _control_plane_calls(moto_aws)
    assert {method for method, _ in calls} == {"GET", "POST"}
    # Untagged keys: tag-on-create would be authorised as an extra apigateway:PUT on an undocumented resource.
    assert tag_keys == set()
    plan_logical_id = synthesized.logical_id(synthesized.stack.api.usage_plan)
    refs = {**PSEUDO, plan_logical_id: plan_id}
    granted: set[tuple[str, str]] = set()
    for statement in _statements(synthesized, resources.API_KEYS, "apigateway"):
        assert "Condition" not in statement
        for action in as_list(statement["Action"]):
            granted |= {(action, render(resource, refs)) for resource in as_list(statement["Resource"])}
    needed = {(f"apigateway:{method}", f"arn:aws:apigateway:{REGION}::{path}") for method, path in calls}
    assert granted == needed
    # Only this plan's keys: another plan's id does not fit the ARN.
    assert ("apigateway:POST", f"arn:aws:apigateway:{REGION}::/usageplans/other/keys") not in granted


@pytest.mark.parametrize("spec", function_specs())
def test_no_other_function_may_call_api_gateway(synthesized: Synthesized, spec: FunctionSpec) -> None:
    statements = _statements(synthesized, spec, "apigateway")
    assert bool(statements) is (spec is resources.API_KEYS)
    for statement in statements:
        # Scoped to this region's control plane paths: no `*` resource.
        assert "*" not in as_list(statement["Resource"])
        assert not references(statement["Resource"]) - {
            ("AWS::Partition", "Ref"),
            ("AWS::Region", "Ref"),
            (synthesized.logical_id(synthesized.stack.api.usage_plan), "Ref"),
        }
