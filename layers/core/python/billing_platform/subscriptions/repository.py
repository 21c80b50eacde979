"""The billing table's Stripe-side items (the only module here that speaks boto3):

* `TENANT#<tid>`/`PROFILE`: tenant -> customer, and `CUSTOMER#<cus>`/`TENANT`: customer -> tenant;
* `TENANT#<tid>`/`SUBSCRIPTION`: the tenant's current subscription state (`SubscriptionRecord`);
* `STRIPE_EVENT#<evt>`/`EVENT`: the webhook event ledger (claimed -> done, with a lease and a TTL).
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from billing_platform.audit.log import AuditEntry, AuditLog
from billing_platform.conditions import applied, lost_race, transact_write_items
from billing_platform.dynamodb import BillingTable, string_attr, utc_now
from billing_platform.errors import StaleWrite
from billing_platform.settings import Settings
from billing_platform.subscriptions.models import SubscriptionRecord

# Stripe retries a failed delivery for up to three days; the ledger remembers an event for 30.
EVENT_TTL_SECONDS = 30 * 86_400
EVENT_LEASE_SECONDS = 60


def profile_key(tenant_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"TENANT#{tenant_id}"}, "sk": {"S": "PROFILE"}}


def customer_key(customer_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"CUSTOMER#{customer_id}"}, "sk": {"S": "TENANT"}}


def subscription_key(tenant_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"TENANT#{tenant_id}"}, "sk": {"S": "SUBSCRIPTION"}}


def event_key(event_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"STRIPE_EVENT#{event_id}"}, "sk": {"S": "EVENT"}}


class Claim(StrEnum):
    CLAIMED = "claimed"  # this delivery processes the event
    DONE = "done"  # already applied: acknowledge and ignore
    IN_PROGRESS = "in_progress"  # another delivery holds a live lease


class SubscriptionRepository(BillingTable):
    """Conditional writes only: a binding, a subscription record or a ledger claim is never silently
    overwritten by a concurrent writer (the caller learns it from the return value or `StaleWrite`)."""

    def __init__(self, settings: Settings | None = None, client: Any = None) -> None:
        super().__init__(settings, client)
        self._audit = AuditLog(self._settings, client)

    # --- tenant <-> customer -------------------------------------------------------------------
    def bind_customer(
        self,
        tenant_id: str,
        customer_id: str,
        *,
        email: str | None = None,
        name: str | None = None,
        audit: AuditEntry | None = None,
        version: int | None = None,
    ) -> bool:
        """Bind tenant and customer both ways, in one transaction with its audit entry. Idempotent for the
        same pair; a tenant whose customer was deleted may be bound to a new one. False (and nothing
        written) if either side is bound to someone else, or if `version` (the Stripe event `created`)
        is older than the customer event already applied. Unknown email/name (None) keep stored ones."""
        now = utc_now().isoformat()
        sets = ["tenant_id = :t", "customer_id = :c", "deleted = :false", "updated_at = :now"]
        values: dict[str, Any] = {
            ":t": {"S": tenant_id},
            ":c": {"S": customer_id},
            ":false": {"BOOL": False},
            ":true": {"BOOL": True},
            ":now": {"S": now},
        }
        condition = "(attribute_not_exists(pk) OR customer_id = :c OR deleted = :true)"
        for attribute, value in (("email", email), ("name", name)):
            if value is not None:
                sets.append(f"#{attribute} = :{attribute}")
                values[f":{attribute}"] = {"S": value}
        if version is not None:
            sets.append("event_version = :v")
            values[":v"] = {"N": str(version)}
            condition += " AND (attribute_not_exists(event_version) OR event_version <= :v)"
        names = {f"#{a}": a for a, v in (("email", email), ("name", name)) if v is not None}
        profile: dict[str, Any] = {
            "TableName": self.table,
            "Key": profile_key(tenant_id),
            "UpdateExpression": "SET " + ", ".join(sets),
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        if names:
            profile["ExpressionAttributeNames"] = names
        items: list[dict[str, Any]] = [
            {"Update": profile},
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {
                        **customer_key(customer_id),
                        "tenant_id": {"S": tenant_id},
                        "customer_id": {"S": customer_id},
                        "updated_at": {"S": now},
                    },
                    "ConditionExpression": "attribute_not_exists(pk) OR tenant_id = :t",
                    "ExpressionAttributeValues": {":t": {"S": tenant_id}},
                }
            },
        ]
        if audit is not None:
            items.append(self._audit.put_item_request(audit))
        return applied(lambda: transact_write_items(self.client, items))

    def mark_customer_deleted(self, tenant_id: str, customer_id: str, *, version: int | None = None) -> None:
        """Flag the tenant's customer deleted (no-op if the tenant is bound to another customer or a newer
        customer event was applied)."""
        values: dict[str, Any] = {
            ":t": {"BOOL": True},
            ":c": {"S": customer_id},
            ":now": {"S": utc_now().isoformat()},
        }
        update = "SET deleted = :t, updated_at = :now"
        condition = "customer_id = :c"
        if version is not None:
            update += ", event_version = :v"
            values[":v"] = {"N": str(version)}
            condition += " AND (attribute_not_exists(event_version) OR event_version <= :v)"
        try:
            self.client.update_item(
                TableName=self.table,
                Key=profile_key(tenant_id),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if not lost_race(exc):
                raise

    def get_profile(self, tenant_id: str) -> dict[str, Any] | None:
        item = self.client.get_item(
            TableName=self.table,
            Key=profile_key(tenant_id),
            ConsistentRead=True,
        ).get("Item")
        if not item:
            return None
        return {k: next(iter(v.values())) if "NULL" not in v else None for k, v in item.items()}

    def customer_for_tenant(self, tenant_id: str) -> str | None:
        profile = self.get_profile(tenant_id)
        return str(profile["customer_id"]) if profile and not profile.get("deleted") else None

    def tenant_for_customer(self, customer_id: str) -> str | None:
        item = self.client.get_item(
            TableName=self.table,
            Key=customer_key(customer_id),
            ConsistentRead=True,
        ).get("Item")
        return str(item["tenant_id"]["S"]) if item else None

    def record_audit(self, entry: AuditEntry) -> None:
        self._audit.record(entry)

    # --- subscription state --------------------------------------------------------------------
    def get_subscription(self, tenant_id: str) -> SubscriptionRecord | None:
        item = self.client.get_item(
            TableName=self.table,
            Key=subscription_key(tenant_id),
            ConsistentRead=True,
        ).get("Item")
        if not item:
            return None
        record = SubscriptionRecord.model_validate_json(item["state"]["S"])
        return record.model_copy(update={"revision": int(item["revision"]["N"])})

    def save_subscription(
        self, record: SubscriptionRecord, expected_revision: int | None, audit: AuditEntry | None = None
    ) -> SubscriptionRecord:
        """Write the record if nobody else wrote since `expected_revision` (None: if it does not exist);
        raises `StaleWrite` otherwise. The audit entry commits in the same transaction."""
        revision = (expected_revision or 0) + 1
        saved = record.model_copy(update={"revision": revision, "updated_at": utc_now()})
        put: dict[str, Any] = {
            "TableName": self.table,
            "Item": {
                **subscription_key(record.tenant_id),
                "tenant_id": {"S": record.tenant_id},
                "subscription_id": {"S": record.subscription_id},
                "status": {"S": record.status},
                "version": {"N": str(record.version)},
                "revision": {"N": str(revision)},
                "state": {"S": saved.model_dump_json(exclude={"revision"})},
            },
        }
        if expected_revision is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "revision = :rev"
            put["ExpressionAttributeValues"] = {":rev": {"N": str(expected_revision)}}
        items: list[dict[str, Any]] = [{"Put": put}]
        if audit is not None:
            items.append(self._audit.put_item_request(audit))
        try:
            transact_write_items(self.client, items)
        except ClientError as exc:
            if lost_race(exc):
                raise StaleWrite(record.tenant_id) from None
            raise
        return saved

    # --- webhook event ledger ------------------------------------------------------------------
    def claim_event(self, event_id: str, event_type: str, created: int) -> Claim:
        """Claim an event for processing: new, or left by a delivery whose lease ran out."""
        now = int(time.time())
        key = event_key(event_id)
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    **key,
                    "event_type": {"S": event_type},
                    "event_created": {"N": str(created)},
                    "status": {"S": "processing"},
                    "lease_until": {"N": str(now + EVENT_LEASE_SECONDS)},
                    "expires_at": {"N": str(now + EVENT_TTL_SECONDS)},
                },
                ConditionExpression="attribute_not_exists(pk) OR (#s = :processing AND lease_until < :now)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":processing": {"S": "processing"}, ":now": {"N": str(now)}},
            )
        except ClientError as exc:
            if not lost_race(exc):
                raise
            item = self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item") or {}
            return Claim.DONE if item.get("status", {}).get("S") == "done" else Claim.IN_PROGRESS
        return Claim.CLAIMED

    def complete_event(self, event_id: str, outcome: str, tenant_id: str | None) -> None:
        self.client.update_item(
            TableName=self.table,
            Key=event_key(event_id),
            UpdateExpression="SET #s = :done, outcome = :o, tenant_id = :t, completed_at = :now REMOVE lease_until",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":done": {"S": "done"},
                ":o": {"S": outcome},
                ":t": string_attr(tenant_id),
                ":now": {"S": utc_now().isoformat()},
            },
        )

    def release_event(self, event_id: str) -> None:
        """Give the claim back after a failure so Stripe's retry can process the event at once."""
        try:
            self.client.delete_item(
                TableName=self.table,
                Key=event_key(event_id),
                ConditionExpression="#s = :processing",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":processing": {"S": "processing"}},
            )
        except ClientError as exc:
            if not lost_race(exc):
                raise

    def get_event(self, event_id: str) -> dict[str, Any] | None:
        item = self.client.get_item(
            TableName=self.table,
            Key=event_key(event_id),
            ConsistentRead=True,
        ).get("Item")
        return item or None
