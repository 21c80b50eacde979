"""`billing-admin tenant backfill-directory` against moto: tenants onboarded before the tenant directory
existed (a customer binding or an API key, but no directory item) are listed, the ones already listed are
left alone, tenants with neither are not invented, and a second run adds nothing."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3

from billing_platform import resources
from billing_platform.cli.main import EXIT_OK, Dependencies, main
from billing_platform.tenants.repository import DIRECTORY_PK, TenantDirectoryRepository


def _put(table: str, **attributes: str) -> None:
    boto3.client("dynamodb", region_name="us-east-1").put_item(
        TableName=table, Item={name: {"S": value} for name, value in attributes.items()}
    )


def _backfill() -> dict[str, Any]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--json", "tenant", "backfill-directory"], Dependencies(stdout=out, stderr=err))
    assert code == EXIT_OK, err.getvalue()
    answer: dict[str, Any] = json.loads(out.getvalue())
    return answer


def test_tenants_onboarded_before_the_directory_are_listed_once(moto_aws: dict[str, str]) -> None:
    table = moto_aws[resources.BILLING_TABLE.env_var]
    _put(table, pk="TENANT#t_customer", sk="PROFILE", customer_id="cus_1")  # a customer binding, unlisted
    _put(table, pk="APIKEY#abc", sk="KEY", gsi1pk="TENANT#t_keyed#APIKEYS", gsi1sk="2026-01-01#key_1")  # a key
    _put(table, pk="TENANT#t_listed", sk="PROFILE", customer_id="cus_2")
    _put(table, pk=DIRECTORY_PK, sk="t_listed")
    _put(table, pk="TENANT#t_planonly", sk="PLAN", plan_id="free")  # neither: not a directory tenant
    _put(table, pk="PORTALTOKEN#ptk_1", sk="TOKEN", gsi1pk="TENANT#t_portal#PORTALTOKENS")

    first = _backfill()
    assert first["added"] == ["t_customer", "t_keyed"]
    assert (first["onboarded"], first["already_listed"]) == (3, 1)
    assert first["items_scanned"] >= 6
    assert TenantDirectoryRepository().listed() == {"t_customer", "t_keyed", "t_listed"}

    second = _backfill()
    assert (second["added"], second["already_listed"]) == ([], 3)
    assert TenantDirectoryRepository().listed() == {"t_customer", "t_keyed", "t_listed"}
