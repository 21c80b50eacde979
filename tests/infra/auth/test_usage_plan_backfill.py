"""infra.usage_plan_backfill: tenants whose API keys were created before the usage plan existed get their
usage-plan key into the plan, so requiring API keys on tenant routes does not lock them out."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
)

from billing_platform import resources
from billing_platform.auth.authorizer import TenantKeyAuthorizer
from billing_platform.auth.caller import Actor
from billing_platform.auth.keys import usage_identifier_key
from billing_platform.auth.service import ApiKeyService
from billing_platform.auth.usage_plans import UsagePlanKeys
from infra.usage_plan_backfill import backfill, main
from tests.factories.authorizer import authorizer_event, bearer

OPERATOR = Actor("operator:test")

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]

REGION = "us-east-1"


def _plan(apigw: Any) -> str:
    api = apigw.create_rest_api(name="billing")
    plan = apigw.create_usage_plan(name="tenants", throttle={"rateLimit": 100, "burstLimit": 200})
    apigw.update_usage_plan(
        usagePlanId=plan["id"], patchOperations=[{"op": "add", "path": "/apiStages", "value": f"{api['id']}:live"}]
    )
    return str(plan["id"])


def _plan_keys(apigw: Any, plan_id: str) -> dict[str, str]:
    items = apigw.get_usage_plan_keys(usagePlanId=plan_id)["items"]
    return {item["name"]: item["value"] for item in items}


def test_backfill_puts_every_key_holding_tenant_into_the_plan_once(
    moto_aws: dict[str, str], env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    apigw = boto3.client("apigateway", region_name=REGION)
    table = moto_aws[resources.BILLING_TABLE.env_var]
    # Keys of a stack without the plan: no usage-plan key anywhere.
    before_plan = ApiKeyService()
    first = before_plan.create("t_a", name="one", actor=OPERATOR)
    before_plan.create("t_a", name="two", actor=OPERATOR)
    revoked = before_plan.create("t_b", name="old", actor=OPERATOR)
    before_plan.revoke("t_b", revoked.key.key_id, actor=OPERATOR)
    plan_id = _plan(apigw)
    # A tenant created once the plan existed is already in it: the backfill must not duplicate it.
    ApiKeyService(usage_plan=UsagePlanKeys(plan_id, client=apigw)).create("t_c", name="new", actor=OPERATOR)
    assert set(_plan_keys(apigw, plan_id)) == {"tenant-t_c"}

    env.setenv("AWS_DEFAULT_REGION", REGION)
    main(["--table-name", table, "--usage-plan-id", plan_id])
    assert "3 tenant(s)" in capsys.readouterr().out
    # Idempotent: a second run finds every tenant already in the plan and adds nothing.
    assert sorted(backfill(table, plan_id)) == ["t_a", "t_b", "t_c"]

    expected = {f"tenant-{t}": usage_identifier_key(t) for t in ("t_a", "t_b", "t_c")}
    assert _plan_keys(apigw, plan_id) == expected
    assert len(apigw.get_api_keys()["items"]) == 3
    # The key the authorizer names for a pre-plan key is now one API Gateway finds in the plan.
    event = authorizer_event("POST", "/v1/usage", authorization=bearer(first.secret))
    policy = TenantKeyAuthorizer().authorize(APIGatewayAuthorizerRequestEvent(event))
    assert policy["usageIdentifierKey"] in _plan_keys(apigw, plan_id).values()
