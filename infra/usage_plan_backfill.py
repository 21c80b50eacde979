"""Puts the usage-plan key of every tenant holding an API key into the tenant usage plan.

Tenant routes require an API key (`requireApiKeys`, default true): the authorizer names the tenant's
usage-plan key (`usageIdentifierKey`) and API Gateway refuses the request (403) unless that key is in the
usage plan. The api_keys function adds it when it creates a tenant's key, but only once it knows the plan
(resources.USAGE_PLAN_ID_ENV): keys created before, by a stack without the plan, have none. Run this once
after deploying such a stack (idempotent: a tenant already in the plan costs one lookup):

    AWS_REGION=<region> .venv/bin/python -m infra.usage_plan_backfill \\
        --table-name <BillingTableName output> --usage-plan-id <TenantUsagePlanId output>
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from typing import Any

import boto3

from billing_platform.auth.usage_plans import UsagePlanKeys


def tenants_with_api_keys(dynamodb: Any, table_name: str) -> Iterator[str]:
    """Each tenant id that has at least one API key (active or not), once. Reads the id -> hash pointer
    items (`APIKEYID#<key id>`): they carry the tenant id and no key material."""
    seen: set[str] = set()
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=table_name,
        FilterExpression="begins_with(pk, :p) AND sk = :k",
        ExpressionAttributeValues={":p": {"S": "APIKEYID#"}, ":k": {"S": "KEY"}},
        ProjectionExpression="tenant_id",
        ConsistentRead=True,
    ):
        for item in page.get("Items", []):
            tenant_id = item["tenant_id"]["S"]
            if tenant_id not in seen:
                seen.add(tenant_id)
                yield tenant_id


def backfill(table_name: str, usage_plan_id: str, *, dynamodb: Any = None, apigateway: Any = None) -> list[str]:
    """Attach every key-holding tenant's usage-plan key to `usage_plan_id`; the tenant ids, in scan order."""
    plan = UsagePlanKeys(usage_plan_id, client=apigateway or boto3.client("apigateway"))
    done = []
    for tenant_id in tenants_with_api_keys(dynamodb or boto3.client("dynamodb"), table_name):
        plan.ensure_tenant(tenant_id)
        done.append(tenant_id)
    return done


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--table-name", required=True, help="the billing table (stack output BillingTableName)")
    parser.add_argument("--usage-plan-id", required=True, help="stack output TenantUsagePlanId")
    args = parser.parse_args(argv)
    tenants = backfill(args.table_name, args.usage_plan_id)
    print(f"{len(tenants)} tenant(s) in usage plan {args.usage_plan_id}")


if __name__ == "__main__":
    main()
