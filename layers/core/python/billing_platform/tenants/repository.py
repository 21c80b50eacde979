"""The directory's items in the billing table: `TENANTS` / `<tenant id>`, one per tenant, put (idempotent)
in the same transaction as the tenant's first API key or customer binding. One partition: it is written
only when a tenant is onboarded, and read a page at a time, in tenant id order."""

from __future__ import annotations

from typing import Any

from billing_platform.dynamodb import BillingTable, decode_cursor, encode_cursor

DIRECTORY_PK = "TENANTS"


def directory_put(table: str, tenant_id: str) -> dict[str, Any]:
    """The TransactWriteItems entry that lists `tenant_id` (rewriting it changes nothing)."""
    return {"Put": {"TableName": table, "Item": {"pk": {"S": DIRECTORY_PK}, "sk": {"S": tenant_id}}}}


class TenantDirectoryRepository(BillingTable):
    def page(self, *, limit: int, cursor: str | None) -> tuple[list[str], str | None]:
        """Tenant ids in order, and the cursor of the next page (None at the end)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": {"S": DIRECTORY_PK}},
            "ProjectionExpression": "sk",
            "Limit": limit,
        }
        start = decode_cursor(cursor, expected={"pk": DIRECTORY_PK}, names={"pk", "sk"})
        if start:
            kwargs["ExclusiveStartKey"] = start
        response = self.client.query(**kwargs)
        return [item["sk"]["S"] for item in response.get("Items", [])], encode_cursor(response.get("LastEvaluatedKey"))
