"""The event ledger: one marker item per event, claimed with a conditional put before the event is
published, so each event is published once whatever the stream's retries, re-splits and concurrent shards.

Item: `EVENTS#<tenant>` / `<marker sk>` (`THRESHOLD#<resource>#<period start>#<limit>#<percent>`,
`GRANT#<grant id>#depleted|expired`) holding the event as first built (`detail`, so a re-publish is
byte-identical), `status` pending -> published, `claimed_by` (the stream record's sequence number, or
`sweep`), and while pending `gsi1pk = EVENTS#PENDING` so the sweeper finds the ones a crash left behind.
TTL `expires_at`: past the last moment a stream record could bring the event back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from billing_platform.conditions import lost_race
from billing_platform.dynamodb import BillingTable, query_items
from billing_platform.entitlements.dal.items import counter_pk
from billing_platform.events.detection import plain_image
from billing_platform.events.models import BillingEvent

PENDING_INDEX_PK = "EVENTS#PENDING"
SWEEP_CURSOR_KEY = {"pk": {"S": "EVENTS#SWEEP"}, "sk": {"S": "CURSOR"}}


class ClaimState(StrEnum):
    CLAIMED = "claimed"  # this caller created the marker: it publishes
    PENDING_MINE = "pending_mine"  # claimed earlier by this same record (a retry): publish again, same event
    PENDING_OTHER = "pending_other"  # another record owns it; it is retried until published (sweeper backstop)
    PUBLISHED = "published"  # done


@dataclass(frozen=True)
class Claim:
    state: ClaimState
    event: BillingEvent  # as stored by the first claimer


def marker_key(tenant_id: str, marker_sk: str) -> dict[str, Any]:
    return {"pk": {"S": f"EVENTS#{tenant_id}"}, "sk": {"S": marker_sk}}


def _epoch(moment: datetime) -> dict[str, str]:
    return {"N": str(int(moment.timestamp()))}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _event_from_item(item: dict[str, Any]) -> BillingEvent:
    return BillingEvent(
        event_id=item["event_id"]["S"],
        detail_type=item["detail_type"]["S"],
        tenant_id=item["tenant_id"]["S"],
        marker_sk=item["sk"]["S"],
        detail=json.loads(item["detail"]["S"]),
        remember_until=datetime.fromtimestamp(int(item["expires_at"]["N"]), UTC),
    )


class EventLedger(BillingTable):
    """The only events code that speaks boto3 to the billing table."""

    # --- markers ------------------------------------------------------------------------------

    def claim(self, event: BillingEvent, claimed_by: str, now: datetime) -> Claim:
        """Create the marker if absent; otherwise say who has it (the refused put returns the item: no
        extra read)."""
        item = {
            **marker_key(event.tenant_id, event.marker_sk),
            "event_id": {"S": event.event_id},
            "detail_type": {"S": event.detail_type},
            "tenant_id": {"S": event.tenant_id},
            "detail": {"S": event.detail_json()},
            "status": {"S": "pending"},
            "claimed_by": {"S": claimed_by},
            "created_at": {"S": _iso(now)},
            "gsi1pk": {"S": PENDING_INDEX_PK},
            "gsi1sk": {"S": f"{_iso(now)}#{event.event_id}"},
            "expires_at": _epoch(event.remember_until),
        }
        try:
            self.client.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as err:
            if not lost_race(err):
                raise
            old: dict[str, Any] = err.response.get("Item") or {}  # type: ignore[assignment]
            if not old:  # an emulator that does not return the item: read it
                old = (
                    self.client.get_item(
                        TableName=self.table, Key=marker_key(event.tenant_id, event.marker_sk), ConsistentRead=True
                    ).get("Item")
                    or {}
                )
            if not old:  # removed by TTL in between (months after its period): nothing to dedupe against
                return Claim(ClaimState.PENDING_OTHER, event)
            stored = _event_from_item(old)
            if old["status"]["S"] == "published":
                return Claim(ClaimState.PUBLISHED, stored)
            mine = old.get("claimed_by", {}).get("S") == claimed_by
            return Claim(ClaimState.PENDING_MINE if mine else ClaimState.PENDING_OTHER, stored)
        return Claim(ClaimState.CLAIMED, event)

    def mark_published(self, event: BillingEvent, now: datetime) -> None:
        self.client.update_item(
            TableName=self.table,
            Key=marker_key(event.tenant_id, event.marker_sk),
            UpdateExpression="SET #st = :published, published_at = :at REMOVE gsi1pk, gsi1sk",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#st": "status"},
            ExpressionAttributeValues={":published": {"S": "published"}, ":at": {"S": _iso(now)}},
        )

    def pending(self, older_than: datetime, limit: int = 500) -> list[BillingEvent]:
        """Markers still pending since before `older_than` (their first publisher crashed or gave up)."""
        found: list[BillingEvent] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :p AND gsi1sk < :cut",
            "ExpressionAttributeValues": {":p": {"S": PENDING_INDEX_PK}, ":cut": {"S": _iso(older_than)}},
        }
        for item in query_items(self.client, **kwargs):
            if item.get("status", {}).get("S") == "pending":
                found.append(_event_from_item(item))
                if len(found) >= limit:
                    break
        return found

    def get(self, tenant_id: str, marker_sk: str) -> tuple[str, BillingEvent] | None:
        """(status, event) of one marker, or None."""
        item = self.client.get_item(
            TableName=self.table, Key=marker_key(tenant_id, marker_sk), ConsistentRead=True
        ).get("Item")
        return (item["status"]["S"], _event_from_item(item)) if item else None

    def recent(self, tenant_id: str, *, limit: int) -> list[tuple[str, BillingEvent]]:
        """(status, event) of the tenant's remembered events, newest first by `occurred_at`. The partition
        holds one marker per threshold, quota and period (and per grant depletion / expiry), dropped by TTL
        after the period, so reading it whole stays small."""
        found = [
            (item["status"]["S"], _event_from_item(item))
            for item in query_items(
                self.client,
                TableName=self.table,
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": f"EVENTS#{tenant_id}"}},
            )
            if "detail" in item and "event_id" in item
        ]
        found.sort(key=lambda pair: (str(pair[1].detail.get("occurred_at", "")), pair[1].event_id), reverse=True)
        return found[:limit]

    # --- what detection reads -----------------------------------------------------------------

    def quota_used(self, tenant_id: str, resource_type: str, shards: int, period_start: datetime) -> Decimal:
        """The whole quota's `used`: the sum over its shards in that period (strongly consistent)."""
        keys = [
            {"pk": {"S": counter_pk(tenant_id, resource_type, shard, shards)}, "sk": {"S": "COUNTER"}}
            for shard in range(shards)
        ]
        total = Decimal(0)
        request: dict[str, Any] = {
            self.table: {"Keys": keys, "ConsistentRead": True, "ProjectionExpression": "used, period_start"}
        }
        while request:
            response = self.client.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(self.table, []):
                if int(item["period_start"]["N"]) == int(period_start.timestamp()):
                    total += Decimal(item["used"]["N"])
            request = response.get("UnprocessedKeys") or {}
        return total

    def expiring_grants(self, day: str, bucket: int, since: int, until: int) -> list[dict[str, str]]:
        """Keys (pk, sk) of grants whose `valid_until` is in [since, until], from gsi1 (grant contract)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :p AND gsi1sk BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": {
                ":p": {"S": f"GRANT_EXPIRY#{day}#{bucket}"},
                ":lo": {"S": f"{since:010d}"},
                ":hi": {"S": f"{until:010d}~"},
            },
            "ProjectionExpression": "pk, sk",
        }
        return [{"pk": i["pk"]["S"], "sk": i["sk"]["S"]} for i in query_items(self.client, **kwargs)]

    def grant(self, pk: str, sk: str) -> dict[str, Any] | None:
        """A grant item as Python values (strongly consistent: the GSI lags)."""
        item = self.client.get_item(TableName=self.table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True)
        return plain_image(item.get("Item"))

    def sweep_cursor(self) -> datetime | None:
        item = self.client.get_item(TableName=self.table, Key=SWEEP_CURSOR_KEY, ConsistentRead=True).get("Item")
        return datetime.fromtimestamp(int(item["swept_until"]["N"]), UTC) if item else None

    def save_sweep_cursor(self, swept_until: datetime) -> None:
        # Never backwards: two overlapping runs leave the later cursor.
        try:
            self.client.put_item(
                TableName=self.table,
                Item={**SWEEP_CURSOR_KEY, "swept_until": _epoch(swept_until)},
                ConditionExpression="attribute_not_exists(pk) OR swept_until < :t",
                ExpressionAttributeValues={":t": _epoch(swept_until)},
            )
        except ClientError as err:
            if not lost_race(err):
                raise


def remember_threshold(period_end: datetime) -> datetime:
    """A threshold marker outlives its period by the stream's record age and a margin."""
    return period_end + timedelta(days=35)
