"""The meter reporter's watermarks in the billing table (the only metering code that speaks boto3).

Items, one partition per tenant x resource (`METER#<tenant>#<resource>`):

* `H#<hour>` (`2026-11-25T10`): `reported` = the units of that hour already delivered to Stripe, and
  while a report is in flight, its claim: `pending_from` (= `reported` when claimed), `pending_to` (the
  hour's total when claimed), the `identifier`, meter `event_name`, `customer_id` and `event_ts` to
  resend it byte for byte.
* `D#<day>` (`2026-11-25`): `reported` = the sum of the day's hour watermarks and `open_claims` = how
  many of its hours hold a claim. Written in the same transaction as every hour claim and commit, so
  one read per tenant-day tells whether anything in it is left to do.

Claims and commits are conditional: a claim needs no claim in flight and `reported` still equal to
what the caller read; a commit needs its own claim still there. Two reporters can therefore never
claim overlapping units, and a unit is committed once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing_platform.conditions import CONDITION_OR_CONFLICT, applied
from billing_platform.dynamodb import BillingTable, decimal_of, number_attr, query_sort_key_range, utc_now
from billing_platform.quantities import ZERO
from billing_platform.subscriptions.models import SubscriptionRecord
from billing_platform.subscriptions.repository import subscription_key

BATCH_GET_MAX = 100


def meter_pk(tenant_id: str, resource_type: str) -> str:
    return f"METER#{tenant_id}#{resource_type}"


def meter_key(tenant_id: str, resource_type: str, sk: str) -> dict[str, Any]:
    """An hour's watermark (`H#<hour>`) or a day's totals (`D#<day>`) of one tenant's resource."""
    return {"pk": {"S": meter_pk(tenant_id, resource_type)}, "sk": {"S": sk}}


# What a claim writes on an hour's watermark (besides tenant_id and resource_type), and commit and drop remove.
CLAIM_FIELDS = "pending_from, pending_to, identifier, event_name, customer_id, event_ts, claimed_at"


@dataclass(frozen=True)
class PendingReport:
    """A claimed, possibly sent, not yet committed report of `to - from_` units of one hour."""

    from_: Decimal
    to: Decimal
    identifier: str
    event_name: str
    customer_id: str
    event_ts: datetime

    @property
    def delta(self) -> Decimal:
        return self.to - self.from_


@dataclass(frozen=True)
class HourWatermark:
    hour: str
    reported: Decimal = ZERO
    pending: PendingReport | None = None


@dataclass(frozen=True)
class DayWatermark:
    reported: Decimal = ZERO
    open_claims: int = 0


class MeterWatermarkRepository(BillingTable):
    """Reads and conditionally advances the per tenant x resource x hour watermarks."""

    def days(self, keys: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str, str], DayWatermark]:
        """(tenant, resource, day) -> day watermark, for the keys that have one (strongly consistent)."""
        wanted = sorted(set(keys))
        found: dict[tuple[str, str, str], DayWatermark] = {}
        for start in range(0, len(wanted), BATCH_GET_MAX):
            chunk = wanted[start : start + BATCH_GET_MAX]
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [meter_key(t, r, f"D#{d}") for t, r, d in chunk],
                    "ConsistentRead": True,
                }
            }
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table, []):
                    key = (item["tenant_id"]["S"], item["resource_type"]["S"], item["sk"]["S"][2:])
                    found[key] = DayWatermark(
                        decimal_of(item.get("reported")), int(decimal_of(item.get("open_claims")))
                    )
                request = response.get("UnprocessedKeys") or {}
        return found

    def subscriptions(self, tenant_ids: Iterable[str]) -> dict[str, SubscriptionRecord]:
        """tenant -> stored subscription (`TENANT#<tid>`/`SUBSCRIPTION`, written by the webhooks), read
        100 at a time: a run looks up every tenant with usage, most of them on unmetered plans."""
        wanted = sorted(set(tenant_ids))
        found: dict[str, SubscriptionRecord] = {}
        for start in range(0, len(wanted), BATCH_GET_MAX):
            keys = [subscription_key(t) for t in wanted[start : start + BATCH_GET_MAX]]
            request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table, []):
                    record = SubscriptionRecord.model_validate_json(item["state"]["S"])
                    found[record.tenant_id] = record
                request = response.get("UnprocessedKeys") or {}
        return found

    def hours(self, tenant_id: str, resource_type: str, day: str) -> dict[str, HourWatermark]:
        """hour label -> watermark for one tenant x resource x day (strongly consistent)."""
        pk = meter_pk(tenant_id, resource_type)
        items = query_sort_key_range(self.client, self.table, pk, f"H#{day}T00", f"H#{day}T23", ConsistentRead=True)
        marks = [_hour_from_item(item) for item in items]
        return {mark.hour: mark for mark in marks}

    def claim(self, tenant_id: str, resource_type: str, hour: str, pending: PendingReport) -> bool:
        """Record the intent to report `pending.to - pending.from_` units of `hour`. False (nothing
        written) if another claim is in flight or `reported` is no longer `pending.from_`."""
        now = utc_now().isoformat()
        values: dict[str, Any] = {
            ":from": number_attr(pending.from_),
            ":to": number_attr(pending.to),
            ":id": {"S": pending.identifier},
            ":ev": {"S": pending.event_name},
            ":cus": {"S": pending.customer_id},
            ":ts": {"S": pending.event_ts.isoformat()},
            ":now": {"S": now},
            ":t": {"S": tenant_id},
            ":r": {"S": resource_type},
        }
        reported_is = "#rep = :from" + (" OR attribute_not_exists(#rep)" if pending.from_ == 0 else "")
        update: dict[str, Any] = {
            "UpdateExpression": (
                "SET pending_from = :from, pending_to = :to, identifier = :id, event_name = :ev, "
                "customer_id = :cus, event_ts = :ts, claimed_at = :now, tenant_id = :t, resource_type = :r"
            ),
            "ConditionExpression": f"attribute_not_exists(pending_to) AND ({reported_is})",
            "ExpressionAttributeNames": {"#rep": "reported"},
            "ExpressionAttributeValues": values,
        }
        items = self._hour_and_day(tenant_id, resource_type, hour, update, delta=ZERO, claims=1, now=now)
        return self._transact(items)

    def commit(self, tenant_id: str, resource_type: str, hour: str, pending: PendingReport) -> bool:
        """Move `reported` to `pending.to` and drop the claim. False (nothing written) if that claim is
        no longer there (another reporter committed it)."""
        now = utc_now().isoformat()
        update: dict[str, Any] = {
            "UpdateExpression": f"SET #rep = :to, reported_at = :now REMOVE {CLAIM_FIELDS}",
            "ConditionExpression": "pending_to = :to AND identifier = :id",
            "ExpressionAttributeNames": {"#rep": "reported"},
            "ExpressionAttributeValues": {
                ":to": number_attr(pending.to),
                ":id": {"S": pending.identifier},
                ":now": {"S": now},
            },
        }
        items = self._hour_and_day(tenant_id, resource_type, hour, update, delta=pending.delta, claims=-1, now=now)
        return self._transact(items)

    def hour(self, tenant_id: str, resource_type: str, hour: str) -> HourWatermark | None:
        item = self.client.get_item(
            TableName=self.table,
            Key=meter_key(tenant_id, resource_type, f"H#{hour}"),
            ConsistentRead=True,
        ).get("Item")
        return _hour_from_item(item) if item else None

    def drop_claim(
        self, tenant_id: str, resource_type: str, hour: str, identifier: str, audit: dict[str, Any] | None = None
    ) -> bool:
        """Remove a claim Stripe refused for good (an operator's decision: the next run claims the hour's
        usage afresh, with the tenant's current customer). `audit` (an `AuditLog.put_item_request`)
        commits in the same transaction. False if that claim is no longer there."""
        now = utc_now().isoformat()
        update: dict[str, Any] = {
            "UpdateExpression": f"REMOVE {CLAIM_FIELDS}",
            "ConditionExpression": "identifier = :id",
            "ExpressionAttributeValues": {":id": {"S": identifier}},
        }
        items = self._hour_and_day(tenant_id, resource_type, hour, update, delta=ZERO, claims=-1, now=now)
        if audit is not None:
            items.append(audit)
        return self._transact(items)

    def _hour_and_day(
        self,
        tenant_id: str,
        resource_type: str,
        hour: str,
        update: dict[str, Any],
        *,
        delta: Decimal,
        claims: int,
        now: str,
    ) -> list[dict[str, Any]]:
        """A change to an hour's watermark (`update`: its expressions) and, in the same transaction, to its
        day's totals (what was reported, how many claims are open)."""
        return [
            {"Update": {"TableName": self.table, "Key": meter_key(tenant_id, resource_type, f"H#{hour}"), **update}},
            self._day_update(tenant_id, resource_type, hour[:10], delta=delta, claims=claims, now=now),
        ]

    def _day_update(
        self, tenant_id: str, resource_type: str, day: str, *, delta: Decimal, claims: int, now: str
    ) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.table,
                "Key": meter_key(tenant_id, resource_type, f"D#{day}"),
                "UpdateExpression": "ADD #rep :delta, open_claims :claims SET tenant_id = :t, resource_type = :r, "
                "updated_at = :now",
                "ExpressionAttributeNames": {"#rep": "reported"},
                "ExpressionAttributeValues": {
                    ":delta": number_attr(delta),
                    ":claims": number_attr(claims),
                    ":t": {"S": tenant_id},
                    ":r": {"S": resource_type},
                    ":now": {"S": now},
                },
            }
        }

    def _transact(self, items: list[dict[str, Any]]) -> bool:
        # A lost race (condition failed, or a concurrent transaction on the same item) changes
        # nothing; the caller re-reads on its next run.
        return applied(lambda: self.client.transact_write_items(TransactItems=items), CONDITION_OR_CONFLICT)


def _hour_from_item(item: dict[str, Any]) -> HourWatermark:
    pending = None
    if "pending_to" in item:
        pending = PendingReport(
            from_=decimal_of(item.get("pending_from")),
            to=decimal_of(item["pending_to"]),
            identifier=item["identifier"]["S"],
            event_name=item["event_name"]["S"],
            customer_id=item["customer_id"]["S"],
            event_ts=datetime.fromisoformat(item["event_ts"]["S"]),
        )
    return HourWatermark(hour=item["sk"]["S"][2:], reported=decimal_of(item.get("reported")), pending=pending)
