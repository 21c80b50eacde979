"""DynamoDB access for webhook endpoints and their deliveries (billing table).

- `WEBHOOKS#<tenant>` / `ENDPOINT#<endpoint id>`: url, signing secret, enabled events, creation.
- `WEBHOOKS#<tenant>` / `DELIVERY#<event id>#<endpoint id>`: the event reached that endpoint (TTL 30 days),
  so a retried message is not sent again to endpoints that already answered 2xx.

One partition per tenant: the delivery function's role is limited to `WEBHOOKS#*` items.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from billing_platform.conditions import lost_race
from billing_platform.dynamodb import BillingTable, query_items
from billing_platform.tenant_webhooks.models import WebhookEndpoint

DELIVERY_MEMORY = timedelta(days=30)


def _pk(tenant_id: str) -> dict[str, str]:
    return {"S": f"WEBHOOKS#{tenant_id}"}


def endpoint_key(tenant_id: str, endpoint_id: str) -> dict[str, Any]:
    return {"pk": _pk(tenant_id), "sk": {"S": f"ENDPOINT#{endpoint_id}"}}


def delivery_key(tenant_id: str, event_id: str, endpoint_id: str) -> dict[str, Any]:
    return {"pk": _pk(tenant_id), "sk": {"S": f"DELIVERY#{event_id}#{endpoint_id}"}}


def _to_item(endpoint: WebhookEndpoint, secret: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        **endpoint_key(endpoint.tenant_id, endpoint.endpoint_id),
        "endpoint_id": {"S": endpoint.endpoint_id},
        "tenant_id": {"S": endpoint.tenant_id},
        "url": {"S": endpoint.url},
        "signing_secret": {"S": secret},
        "enabled_events": {"L": [{"S": e} for e in endpoint.enabled_events]},
        "created_at": {"S": endpoint.created_at.isoformat()},
        "created_by": {"S": endpoint.created_by},
    }
    if endpoint.description:
        item["description"] = {"S": endpoint.description}
    return item


def _from_item(item: dict[str, Any]) -> WebhookEndpoint:
    return WebhookEndpoint(
        endpoint_id=item["endpoint_id"]["S"],
        tenant_id=item["tenant_id"]["S"],
        url=item["url"]["S"],
        description=item.get("description", {}).get("S"),
        enabled_events=tuple(v["S"] for v in item.get("enabled_events", {}).get("L", [])),
        created_at=datetime.fromisoformat(item["created_at"]["S"]),
        created_by=item.get("created_by", {}).get("S", ""),
    )


class WebhookEndpointRepository(BillingTable):
    def create(self, endpoint: WebhookEndpoint, secret: str, audit_put: dict[str, Any]) -> None:
        """The endpoint and its audit entry in one transaction."""
        self.client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": _to_item(endpoint, secret),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                audit_put,
            ]
        )

    def with_secrets(self, tenant_id: str) -> list[tuple[WebhookEndpoint, str]]:
        """Every endpoint of the tenant with its signing secret (delivery only)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :e)",
            "ExpressionAttributeValues": {":pk": _pk(tenant_id), ":e": {"S": "ENDPOINT#"}},
            "ConsistentRead": True,
        }
        return [(_from_item(i), i["signing_secret"]["S"]) for i in query_items(self.client, **kwargs)]

    def endpoints(self, tenant_id: str) -> list[WebhookEndpoint]:
        return [endpoint for endpoint, _ in self.with_secrets(tenant_id)]

    def get(self, tenant_id: str, endpoint_id: str) -> WebhookEndpoint | None:
        item = self.client.get_item(
            TableName=self.table, Key=endpoint_key(tenant_id, endpoint_id), ConsistentRead=True
        ).get("Item")
        return _from_item(item) if item else None

    def delete(self, endpoint: WebhookEndpoint, audit_put: dict[str, Any]) -> bool:
        """Delete with its audit entry; False when it was already gone (deleted concurrently)."""
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Delete": {
                            "TableName": self.table,
                            "Key": endpoint_key(endpoint.tenant_id, endpoint.endpoint_id),
                            "ConditionExpression": "attribute_exists(pk)",
                        }
                    },
                    audit_put,
                ]
            )
        except ClientError as err:
            if lost_race(err):
                return False
            raise
        return True

    # --- deliveries ---------------------------------------------------------------------------

    def delivered(self, tenant_id: str, event_id: str, endpoint_ids: list[str]) -> set[str]:
        """Which of `endpoint_ids` already got `event_id`."""
        if not endpoint_ids:
            return set()
        found: set[str] = set()
        keys = [delivery_key(tenant_id, event_id, e) for e in endpoint_ids]
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {
                self.table: {"Keys": keys[start : start + 100], "ConsistentRead": True, "ProjectionExpression": "sk"}
            }
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table, []):
                    found.add(item["sk"]["S"].rsplit("#", 1)[1])
                request = response.get("UnprocessedKeys") or {}
        return found

    def mark_delivered(self, tenant_id: str, event_id: str, endpoint_id: str, status: int, now: datetime) -> None:
        self.client.put_item(
            TableName=self.table,
            Item={
                **delivery_key(tenant_id, event_id, endpoint_id),
                "status_code": {"N": str(status)},
                "delivered_at": {"S": now.astimezone(UTC).isoformat()},
                "expires_at": {"N": str(int((now + DELIVERY_MEMORY).timestamp()))},
            },
        )
