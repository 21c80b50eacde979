"""DynamoDB access for tenant API keys (the billing table), the only auth code that speaks boto3.

- `APIKEY#<sha256 of the key>` / `KEY`: the key's metadata (never the key); TTL `expires_at` a while
  after expiry or revocation.
- `APIKEYID#<key id>` / `KEY`: key id -> hash, so revocation by id is one strongly consistent read (the
  `gsi1` listing index, `TENANT#<tid>#APIKEYS`, is eventually consistent).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from billing_platform.auth.models import ApiKey, ApiKeyPage
from billing_platform.conditions import applied, transact_write_items
from billing_platform.dynamodb import BillingTable
from billing_platform.tenants.repository import directory_put

# last_used_at is refreshed at most this often per key, so the authorizer does not write on every call.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# A revoked key's item is kept (for listing and forensics) this long, then DynamoDB's TTL removes it.
REVOKED_RETENTION = timedelta(days=90)


def _iso(moment: datetime) -> str:
    # One fixed format (UTC, microseconds) so stored times compare correctly as strings.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _opt_time(item: dict[str, Any], name: str) -> datetime | None:
    value = item.get(name, {}).get("S")
    return datetime.fromisoformat(value) if value else None


def _from_item(item: dict[str, Any]) -> ApiKey:
    return ApiKey(
        key_id=item["key_id"]["S"],
        tenant_id=item["tenant_id"]["S"],
        name=item["name"]["S"],
        description=item.get("description", {}).get("S"),
        display_prefix=item.get("display_prefix", {}).get("S", ""),
        created_at=datetime.fromisoformat(item["created_at"]["S"]),
        expires_at=_opt_time(item, "key_expires_at"),
        last_used_at=_opt_time(item, "last_used_at"),
        revoked_at=_opt_time(item, "revoked_at"),
        scope="admin" if item.get("scope", {}).get("S") == "admin" else "use",
        entity_id=item.get("entity_id", {}).get("S"),
    )


class ApiKeyRepository(BillingTable):
    """DynamoDB access for API keys (the billing table). The only code here that speaks boto3."""

    def create(self, key: ApiKey, key_hash: str, audit_put: dict[str, Any]) -> None:
        """Key item, id -> hash pointer, audit entry and the tenant's directory entry in one transaction
        (all or nothing)."""
        item: dict[str, Any] = {
            "pk": {"S": f"APIKEY#{key_hash}"},
            "sk": {"S": "KEY"},
            "gsi1pk": {"S": f"TENANT#{key.tenant_id}#APIKEYS"},
            "gsi1sk": {"S": f"{_iso(key.created_at)}#{key.key_id}"},
            "key_id": {"S": key.key_id},
            "tenant_id": {"S": key.tenant_id},
            "name": {"S": key.name},
            "display_prefix": {"S": key.display_prefix},
            "created_at": {"S": _iso(key.created_at)},
            "scope": {"S": key.scope},
        }
        if key.entity_id:
            item["entity_id"] = {"S": key.entity_id}
        if key.description:
            item["description"] = {"S": key.description}
        if key.expires_at:
            item["key_expires_at"] = {"S": _iso(key.expires_at)}
            # The table's TTL removes the item a while after expiry; the authorizer checks expiry itself.
            item["expires_at"] = {"N": str(int((key.expires_at + REVOKED_RETENTION).timestamp()))}
        pointer = {
            "pk": {"S": f"APIKEYID#{key.key_id}"},
            "sk": {"S": "KEY"},
            "tenant_id": {"S": key.tenant_id},
            "key_hash": {"S": key_hash},
        }
        transact_write_items(
            self.client,
            [
                {"Put": {"TableName": self.table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}},
                {"Put": {"TableName": self.table, "Item": pointer, "ConditionExpression": "attribute_not_exists(pk)"}},
                audit_put,
                directory_put(self.table, key.tenant_id),
            ],
        )

    def get_by_hash(self, key_hash: str) -> ApiKey | None:
        # Strongly consistent: a key revoked a moment ago must not pass.
        response = self.client.get_item(
            TableName=self.table,
            Key={"pk": {"S": f"APIKEY#{key_hash}"}, "sk": {"S": "KEY"}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return _from_item(item) if item else None

    def hash_for_key_id(self, key_id: str) -> tuple[str, str] | None:
        """(tenant id, key hash) of a key id, or None."""
        response = self.client.get_item(
            TableName=self.table,
            Key={"pk": {"S": f"APIKEYID#{key_id}"}, "sk": {"S": "KEY"}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return (item["tenant_id"]["S"], item["key_hash"]["S"]) if item else None

    def list_for_tenant(self, tenant_id: str, *, limit: int, cursor: str | None) -> ApiKeyPage:
        gsi1pk = f"TENANT#{tenant_id}#APIKEYS"
        items, next_cursor = self.gsi1_page(gsi1pk, limit=limit, cursor=cursor)
        return ApiKeyPage([_from_item(item) for item in items], next_cursor)

    def revoke(self, key_hash: str, tenant_id: str, revoked_at: datetime, audit_put: dict[str, Any]) -> bool:
        """Mark the key revoked with its audit entry, atomically. False if it was already revoked."""
        return applied(
            lambda: transact_write_items(
                self.client,
                [
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": {"pk": {"S": f"APIKEY#{key_hash}"}, "sk": {"S": "KEY"}},
                            "UpdateExpression": "SET revoked_at = :r, expires_at = :ttl",
                            "ConditionExpression": "tenant_id = :t AND attribute_not_exists(revoked_at)",
                            "ExpressionAttributeValues": {
                                ":r": {"S": _iso(revoked_at)},
                                ":t": {"S": tenant_id},
                                ":ttl": {"N": str(int((revoked_at + REVOKED_RETENTION).timestamp()))},
                            },
                        }
                    },
                    audit_put,
                ],
            )
        )

    def touch_last_used(self, key_hash: str, now: datetime) -> bool:
        """Set last_used_at = now unless it was set less than LAST_USED_RESOLUTION ago (conditional, so
        concurrent authorizer containers write at most once a minute). True if it wrote."""
        return applied(
            lambda: self.client.update_item(
                TableName=self.table,
                Key={"pk": {"S": f"APIKEY#{key_hash}"}, "sk": {"S": "KEY"}},
                UpdateExpression="SET last_used_at = :now",
                ConditionExpression=(
                    "attribute_exists(pk) AND (attribute_not_exists(last_used_at) OR last_used_at < :cut)"
                ),
                ExpressionAttributeValues={
                    ":now": {"S": _iso(now)},
                    ":cut": {"S": _iso(now - LAST_USED_RESOLUTION)},
                },
            )
        )

    def binding_update(self, key_hash: str, tenant_id: str, seen: str | None, entity_id: str | None) -> dict[str, Any]:
        """The transaction item moving a key's binding from `seen` (as read) to `entity_id` (None: unbound):
        only for a live key of `tenant_id` still bound as seen."""
        values: dict[str, Any] = {":t": {"S": tenant_id}}
        condition = "tenant_id = :t AND attribute_not_exists(revoked_at)"
        if seen is None:
            condition += " AND attribute_not_exists(entity_id)"
        else:
            condition += " AND entity_id = :seen"
            values[":seen"] = {"S": seen}
        if entity_id is None:
            update = "REMOVE entity_id"
        else:
            update = "SET entity_id = :e"
            values[":e"] = {"S": entity_id}
        return {
            "Update": {
                "TableName": self.table,
                "Key": {"pk": {"S": f"APIKEY#{key_hash}"}, "sk": {"S": "KEY"}},
                "UpdateExpression": update,
                "ConditionExpression": condition,
                "ExpressionAttributeValues": values,
            }
        }
