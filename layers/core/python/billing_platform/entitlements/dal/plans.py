"""The tenant's PLAN item: read, write (never over a newer source version), and "is this tenant known"."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from billing_platform.conditions import lost_race
from billing_platform.entitlements.dal.items import _n, _s, plan_from_item, plan_key, plan_to_item, profile_key
from billing_platform.entitlements.dal.table import TableAccess
from billing_platform.entitlements.models import TenantPlan


class PlanAccess(TableAccess):
    """Reads and writes of `TENANT#<tid>` / `PLAN`."""

    def get_plan(self, tenant_id: str) -> TenantPlan | None:
        item = self.get_item(plan_key(tenant_id))
        return plan_from_item(item) if item else None

    def tenant_known(self, tenant_id: str) -> bool:
        """True when the tenant has a plan, a billing profile or an API key."""
        response = self.client.batch_get_item(
            RequestItems={
                self._table: {
                    "Keys": [plan_key(tenant_id), profile_key(tenant_id)],
                    "ProjectionExpression": "pk",
                    "ConsistentRead": True,
                }
            }
        )
        if response.get("Responses", {}).get(self._table):
            return True
        keys = self.client.query(
            TableName=self._table,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :g",
            ExpressionAttributeValues={":g": _s(f"TENANT#{tenant_id}#APIKEYS")},
            Limit=1,
        )
        return bool(keys.get("Items"))

    def put_plan(self, plan: TenantPlan, now: datetime) -> bool:
        """Write the PLAN item; with a source version, only over an older (or equal) version."""
        kwargs: dict[str, Any] = {"TableName": self._table, "Item": plan_to_item(plan, now)}
        if plan.source_version is not None:
            kwargs["ConditionExpression"] = "attribute_not_exists(source_version) OR source_version <= :v"
            kwargs["ExpressionAttributeValues"] = {":v": _n(plan.source_version)}
        try:
            self.client.put_item(**kwargs)
        except ClientError as err:
            if lost_race(err):
                return False
            raise
        return True
