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


# A tenant's customer binding (`TENANT#<tid>` / PROFILE) and its API keys (gsi1pk `TENANT#<tid>#APIKEYS`): what
# lists a tenant in the directory, also for tenants onboarded before the directory existed.
_ONBOARDED = (
    "(begins_with(pk, :tenant) AND sk = :profile) OR (begins_with(gsi1pk, :tenant) AND contains(gsi1pk, :keys))"
)


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

    def listed(self) -> set[str]:
        """Every tenant id the directory lists (all pages)."""
        found: set[str] = set()
        cursor: str | None = None
        while True:
            ids, cursor = self.page(limit=1000, cursor=cursor)
            found.update(ids)
            if cursor is None:
                return found

    def onboarded(self) -> tuple[set[str], int]:
        """Tenant ids with a customer binding or an API key, found by scanning the whole table (a one-off
        backfill, not a request path), and how many items the scan read."""
        found: set[str] = set()
        scanned = 0
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": _ONBOARDED,
            "ProjectionExpression": "pk, gsi1pk",
            "ExpressionAttributeValues": {
                ":tenant": {"S": "TENANT#"},
                ":profile": {"S": "PROFILE"},
                ":keys": {"S": "#APIKEYS"},
            },
        }
        while True:
            response = self.client.scan(**kwargs)
            scanned += int(response.get("ScannedCount", 0))
            for item in response.get("Items", []):
                key = item["pk"]["S"] if item["pk"]["S"].startswith("TENANT#") else item["gsi1pk"]["S"]
                found.add(key.split("#")[1])
            if "LastEvaluatedKey" not in response:
                return found, scanned
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def list_tenants(self, tenant_ids: list[str]) -> None:
        """Put the directory items of `tenant_ids` (idempotent: a rewrite changes nothing), 25 per batch."""
        for start in range(0, len(tenant_ids), 25):
            requests = [{"PutRequest": directory_put(self.table, t)["Put"]} for t in tenant_ids[start : start + 25]]
            for request in requests:
                del request["PutRequest"]["TableName"]
            pending: dict[str, Any] = {self.table: requests}
            while pending:
                pending = self.client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
