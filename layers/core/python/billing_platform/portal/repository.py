"""DynamoDB access for portal tokens (the billing table), the only portal code that speaks boto3.

`PORTALTOKEN#<token id>` / `TOKEN`: the token's metadata and `token_hash` (SHA-256 of the token, never the
token); `gsi1pk = TENANT#<tid>#PORTALTOKENS` lists a tenant's tokens newest first. TTL `expires_at` removes
the item a week after the token stops working (kept that long for the listing and forensics); the
authorizer checks expiry and revocation itself, so TTL's lag never extends a token's life.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from billing_platform.conditions import applied, transact_write_items
from billing_platform.dynamodb import BillingTable
from billing_platform.portal.models import PortalToken, PortalTokenPage

RETENTION = timedelta(days=7)


def _iso(moment: datetime) -> str:
    # One fixed format (UTC, microseconds) so stored times compare correctly as strings.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _key(token_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"PORTALTOKEN#{token_id}"}, "sk": {"S": "TOKEN"}}


def _listing_pk(tenant_id: str) -> str:
    return f"TENANT#{tenant_id}#PORTALTOKENS"


def _ttl(moment: datetime) -> dict[str, str]:
    return {"N": str(int((moment + RETENTION).timestamp()))}


def _from_item(item: dict[str, Any]) -> PortalToken:
    revoked = item.get("revoked_at", {}).get("S")
    return PortalToken(
        token_id=item["token_id"]["S"],
        tenant_id=item["tenant_id"]["S"],
        created_at=datetime.fromisoformat(item["created_at"]["S"]),
        expires_at=datetime.fromisoformat(item["token_expires_at"]["S"]),
        created_by=item["created_by"]["S"],
        entity_id=item.get("entity_id", {}).get("S"),
        label=item.get("label", {}).get("S"),
        revoked_at=datetime.fromisoformat(revoked) if revoked else None,
        allowed_origins=tuple(origin["S"] for origin in item.get("allowed_origins", {}).get("L", [])),
    )


class PortalTokenRepository(BillingTable):
    """Portal token items. Every mutation commits in one transaction with its audit entry."""

    def create(self, token: PortalToken, token_hash: str, audit_put: dict[str, Any]) -> None:
        item: dict[str, Any] = {
            **_key(token.token_id),
            "gsi1pk": {"S": _listing_pk(token.tenant_id)},
            "gsi1sk": {"S": f"{_iso(token.created_at)}#{token.token_id}"},
            "token_id": {"S": token.token_id},
            "tenant_id": {"S": token.tenant_id},
            "token_hash": {"S": token_hash},
            "created_at": {"S": _iso(token.created_at)},
            "created_by": {"S": token.created_by},
            "token_expires_at": {"S": _iso(token.expires_at)},
            "expires_at": _ttl(token.expires_at),
        }
        if token.entity_id:
            item["entity_id"] = {"S": token.entity_id}
        if token.label:
            item["label"] = {"S": token.label}
        if token.allowed_origins:
            item["allowed_origins"] = {"L": [{"S": origin} for origin in token.allowed_origins]}
        transact_write_items(
            self.client,
            [
                {"Put": {"TableName": self.table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}},
                audit_put,
            ],
        )

    def get(self, token_id: str) -> tuple[PortalToken, str] | None:
        """(metadata, stored hash) of a token id, strongly consistent: a token revoked a moment ago fails."""
        response = self.client.get_item(TableName=self.table, Key=_key(token_id), ConsistentRead=True)
        item = response.get("Item")
        return (_from_item(item), item["token_hash"]["S"]) if item else None

    def list_for_tenant(self, tenant_id: str, *, limit: int, cursor: str | None) -> PortalTokenPage:
        gsi1pk = _listing_pk(tenant_id)
        items, next_cursor = self.gsi1_page(gsi1pk, limit=limit, cursor=cursor)
        return PortalTokenPage([_from_item(item) for item in items], next_cursor)

    def revoke(self, token: PortalToken, revoked_at: datetime, audit_put: dict[str, Any]) -> bool:
        """Mark the token revoked with its audit entry, atomically. False if it was already revoked."""
        return applied(
            lambda: transact_write_items(
                self.client,
                [
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": _key(token.token_id),
                            "UpdateExpression": "SET revoked_at = :r",
                            "ConditionExpression": "tenant_id = :t AND attribute_not_exists(revoked_at)",
                            "ExpressionAttributeValues": {
                                ":r": {"S": _iso(revoked_at)},
                                ":t": {"S": token.tenant_id},
                            },
                        }
                    },
                    audit_put,
                ],
            )
        )
