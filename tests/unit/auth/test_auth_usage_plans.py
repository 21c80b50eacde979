"""Per-tenant throttling: creating a tenant's API key puts the tenant's usage-plan key into the API
Gateway usage plan (once per tenant), with the value the authorizer returns as usageIdentifierKey."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from billing_platform import resources
from billing_platform.auth.caller import Actor
from billing_platform.auth.keys import usage_identifier_key
from billing_platform.auth.service import ApiKeyService
from billing_platform.auth.usage_plans import UsagePlanKeys
from billing_platform.settings import get_settings
from tests.factories.authorizer import authorizer_event, bearer
from tests.factories.handlers import load_handler
from tests.factories.lambda_context import LambdaContext

ME = Actor("operator:me")


@pytest.fixture
def usage_plan(moto_aws: dict[str, str], env: pytest.MonkeyPatch) -> str:
    apigw = boto3.client("apigateway", region_name="us-east-1")
    api = apigw.create_rest_api(name="billing")
    plan = apigw.create_usage_plan(name="tenants", throttle={"rateLimit": 100, "burstLimit": 200})
    apigw.update_usage_plan(
        usagePlanId=plan["id"], patchOperations=[{"op": "add", "path": "/apiStages", "value": f"{api['id']}:live"}]
    )
    env.setenv(resources.USAGE_PLAN_ID_ENV, plan["id"])
    get_settings.cache_clear()
    return str(plan["id"])


def _plan_keys(plan_id: str) -> dict[str, str]:
    apigw = boto3.client("apigateway", region_name="us-east-1")
    keys = apigw.get_usage_plan_keys(usagePlanId=plan_id)["items"]
    return {k["name"]: k["value"] for k in keys}


def test_each_tenant_gets_one_usage_plan_key_whatever_its_number_of_api_keys(usage_plan: str) -> None:
    service = ApiKeyService()
    service.create("t_a", name="one", actor=ME)
    service.create("t_a", name="two", actor=ME)
    service.create("t_b", name="one", actor=ME)
    assert _plan_keys(usage_plan) == {
        "tenant-t_a": usage_identifier_key("t_a"),
        "tenant-t_b": usage_identifier_key("t_b"),
    }
    all_keys = boto3.client("apigateway", region_name="us-east-1").get_api_keys()["items"]
    assert len(all_keys) == 2


def test_the_authorizer_names_the_tenant_usage_plan_key(usage_plan: str) -> None:
    created = ApiKeyService().create("t_a", name="one", actor=ME)
    policy = load_handler("authorizer").handler(
        authorizer_event("POST", "/v1/usage", authorization=bearer(created.secret)), LambdaContext()
    )
    assert policy["usageIdentifierKey"] == _plan_keys(usage_plan)["tenant-t_a"]


def test_no_platform_key_exists_without_its_usage_plan_key(moto_aws: dict[str, str]) -> None:
    class Unavailable:
        def get_api_keys(self, **_kwargs: Any) -> Any:
            raise ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "slow down"}}, "GetApiKeys")

    service = ApiKeyService(usage_plan=UsagePlanKeys("plan", client=Unavailable()))
    with pytest.raises(ClientError):
        service.create("t_a", name="one", actor=ME)
    table = moto_aws[resources.BILLING_TABLE.env_var]
    assert boto3.client("dynamodb", region_name="us-east-1").scan(TableName=table)["Items"] == []
