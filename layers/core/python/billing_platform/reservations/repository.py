"""DynamoDB access for reservations (billing table). The only reservation code that speaks boto3.

Item layout:
- `RSV#<tid>#<rid>` / `RSV`: one reservation, its own partition. While it is `held` (and, once settled,
  until its usage record is sent) it carries `gsi1pk = RSVDUE#<nn>` / `gsi1sk = <due epoch, 12 digits>#<rid>`:
  a sparse index the sweep queries for what is due (a range read per partition, never a scan). Resolving
  removes both attributes, so the index only ever holds open work. `expires_at` (the table's TTL) is set
  only on resolution: TTL never deletes a held reservation, so the sweep's conditional transition is the
  only expiry path and nothing can give a hold back twice.

Every resolution is one TransactWriteItems: the reservation's `held -> settled|cancelled|expired`
transition (conditioned on `state = held`) together with the counter changes. A give-back is conditioned on
the counter still being in the period the reservation was taken from (`period_start <= reserved_at <
period_end`), so a rolled-over quota is never credited.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from billing_platform.conditions import Cancellation, lost_race, transact_once
from billing_platform.dynamodb import number_attr, string_attr
from billing_platform.entitlements.dal.items import counter_from_item, counter_key
from billing_platform.entitlements.dal.table import TableAccess
from billing_platform.entitlements.models import CounterState, QuotaCounter
from billing_platform.grants.models import GrantState
from billing_platform.grants.repository import grant_key
from billing_platform.instants import from_epoch, to_epoch
from billing_platform.reservations.models import (
    METER_RETRY_AFTER,
    RESOLVED_RETENTION,
    Reservation,
    ReservationState,
    grants_from_json,
    grants_json,
    shards_from_json,
    shards_json,
)

Item = dict[str, Any]
RESERVATION_SK = "RSV"
DUE_INDEX = "gsi1"
# Partitions of the sweep's index: spreads the index writes of a busy platform over several keys.
DUE_PARTITIONS = 8


def reservation_key(tenant_id: str, reservation_id: str) -> Item:
    return {"pk": string_attr(f"RSV#{tenant_id}#{reservation_id}"), "sk": string_attr(RESERVATION_SK)}


def due_partition(reservation_id: str) -> str:
    bucket = int.from_bytes(hashlib.sha256(reservation_id.encode()).digest()[:2], "big") % DUE_PARTITIONS
    return f"RSVDUE#{bucket:02d}"


def due_sort_key(at: datetime, reservation_id: str) -> str:
    return f"{to_epoch(at):012d}#{reservation_id}"


def reservation_to_item(reservation: Reservation) -> Item:
    """The item of a new (held) reservation."""
    item: Item = {
        **reservation_key(reservation.tenant_id, reservation.reservation_id),
        "tenant_id": string_attr(reservation.tenant_id),
        "reservation_id": string_attr(reservation.reservation_id),
        "resource_type": string_attr(reservation.resource_type),
        "estimate": number_attr(reservation.estimate),
        "reserved_at": number_attr(to_epoch(reservation.reserved_at)),
        "due_at": number_attr(to_epoch(reservation.due_at)),
        "shards": string_attr(shards_json(reservation.shards)),
        "layout": number_attr(reservation.layout),
        "state": string_attr(reservation.state.value),
        "gsi1pk": string_attr(due_partition(reservation.reservation_id)),
        "gsi1sk": string_attr(due_sort_key(reservation.due_at, reservation.reservation_id)),
    }
    if reservation.grants:
        item["grants"] = string_attr(grants_json(reservation.grants))
    if reservation.entity_id is not None:
        item["entity_id"] = string_attr(reservation.entity_id)
        item["entities"] = {"L": [string_attr(e) for e in reservation.entities]}
    return item


def reservation_from_item(item: Item) -> Reservation:
    def dec(name: str) -> Decimal:
        return Decimal(item[name]["N"]) if name in item else Decimal(0)

    return Reservation(
        tenant_id=item["tenant_id"]["S"],
        reservation_id=item["reservation_id"]["S"],
        resource_type=item["resource_type"]["S"],
        estimate=dec("estimate"),
        reserved_at=from_epoch(int(item["reserved_at"]["N"])),
        due_at=from_epoch(int(item["due_at"]["N"])),
        shards=shards_from_json(item["shards"]["S"]),
        layout=int(item["layout"]["N"]),
        grants=grants_from_json(item["grants"]["S"]) if "grants" in item else (),
        state=ReservationState(item["state"]["S"]),
        actual=Decimal(item["actual"]["N"]) if "actual" in item else None,
        charged=dec("charged"),
        given_back=dec("given_back"),
        uncovered=dec("uncovered"),
        resolved_at=from_epoch(int(item["resolved_at"]["N"])) if "resolved_at" in item else None,
        meter_pending=bool(item.get("meter_pending", {}).get("BOOL", False)),
        forfeited=dec("forfeited"),
        entity_id=item["entity_id"]["S"] if "entity_id" in item else None,
        entities=tuple(e["S"] for e in item.get("entities", {}).get("L", [])),
    )


@dataclass(frozen=True)
class CounterChange:
    """One counter update inside a resolution: give `quantity` back, or (take=True) take it."""

    key: Item
    quantity: Decimal
    take: bool = False


@dataclass(frozen=True)
class GrantRefill:
    """Give `quantity` back to a grant that paid for the reservation (inside a resolution)."""

    key: Item
    quantity: Decimal


@dataclass(frozen=True)
class Resolution:
    """What a resolution transaction did. `applied`: committed. Otherwise `reservation` is the item as it
    now stands if it was no longer held (someone else resolved it), or `counter_index` / `counter` name the
    counter whose condition failed (with the item as it was), or `conflict` (retry)."""

    applied: bool
    reservation: Reservation | None = None
    counter_index: int | None = None
    counter: QuotaCounter | None = None
    refill_index: int | None = None  # the grant refill whose condition failed (expired, voided)
    conflict: bool = False
    spend_refused: bool = False  # the spend item was not where its give-back was priced
    spend: Item | None = None  # the spend item as it was then


class ReservationRepository(TableAccess):
    """Reservation items and their resolution transactions (billing table, the entitlement data access's
    table plumbing). Never retries on its own."""

    def hold_put(self, reservation: Reservation) -> dict[str, Any]:
        """The transaction item that records a new reservation beside the take of its estimate; it fails
        (ALL_OLD returned) when the id exists, so a retried reserve never takes twice."""
        return {
            "Put": {
                "TableName": self._table,
                "Item": reservation_to_item(reservation),
                "ConditionExpression": "attribute_not_exists(pk)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def get(self, tenant_id: str, reservation_id: str) -> Reservation | None:
        item = self.get_item(reservation_key(tenant_id, reservation_id))
        return reservation_from_item(item) if item else None

    def resolve(
        self,
        before: Reservation,
        after: Reservation,
        changes: list[CounterChange],
        now: datetime,
        *,
        take_expression: dict[str, Any] | None = None,
        refills: list[GrantRefill] | None = None,
        spend: dict[str, Any] | None = None,
    ) -> Resolution:
        """Commit `before` (held) -> `after` with `changes`, grant `refills` and the `spend` item's update
        (a capped tenant's give-back of the rated cost), all or nothing. A give-back is conditioned on the
        reservation's period; a take uses `take_expression` (the consume hot path's own update); a refill on
        the grant being live and having drawn at least that much."""
        items: list[dict[str, Any]] = [self.transition_item(before, after, now)]
        for change in changes:
            if change.take:
                if take_expression is None:
                    raise ValueError("a take needs the consume expression")
                expression = take_expression
            else:
                expression = self._give_back_expression(change.quantity, before.reserved_at)
            items.append(
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": change.key,
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        **expression,
                    }
                }
            )
        items += [_refill_item(self._table, refill, now) for refill in refills or ()]
        if spend is not None:
            items.append(spend)
        refused = transact_once(self.client, items)
        if refused is not None:
            if spend is not None and len(items) - 1 in refused.failed and len(refused.failed) == 1:
                return Resolution(applied=False, spend_refused=True, spend=refused.item(len(items) - 1))
            return self._classify(refused, before, len(changes))
        return Resolution(applied=True, reservation=after)

    def _classify(self, refused: Cancellation, before: Reservation, changes: int) -> Resolution:
        # Item 0 is the reservation, then one per counter change, then the grant refills.
        if 0 in refused.failed:
            item = refused.item(0)
            current = reservation_from_item(item) if item else self.get(before.tenant_id, before.reservation_id)
            return Resolution(applied=False, reservation=current)
        for index in sorted(refused.failed):
            position = index - 1
            if position >= changes:
                return Resolution(applied=False, refill_index=position - changes)
            item = refused.item(index)
            # An entity's limit item is no quota counter: the caller tells them apart by index.
            counter = counter_from_item(item) if item and "state" in item else None
            return Resolution(applied=False, counter_index=position, counter=counter)
        if refused.contended:
            return Resolution(applied=False, conflict=True)
        raise RuntimeError(f"reservation transaction cancelled: {list(refused.codes)}")

    def transition_item(self, before: Reservation, after: Reservation, now: datetime) -> dict[str, Any]:
        """The reservation's update inside a resolution transaction: `before` (held) becomes `after`."""
        values: dict[str, Any] = {
            ":held": string_attr(ReservationState.HELD.value),
            ":state": string_attr(after.state.value),
            ":charged": number_attr(after.charged),
            ":given": number_attr(after.given_back),
            ":uncovered": number_attr(after.uncovered),
            ":at": number_attr(to_epoch(now)),
            ":exp": number_attr(to_epoch(now + RESOLVED_RETENTION)),
            ":pending": {"BOOL": after.meter_pending},
            ":forfeited": number_attr(after.forfeited),
        }
        sets = [
            "#st = :state",
            "charged = :charged",
            "given_back = :given",
            "uncovered = :uncovered",
            "resolved_at = :at",
            "expires_at = :exp",
            "meter_pending = :pending",
            "forfeited = :forfeited",
        ]
        if after.grants != before.grants:
            values[":grants"] = string_attr(grants_json(after.grants))
            sets.append("grants = :grants")
        if after.actual is not None:
            values[":actual"] = number_attr(after.actual)
            sets.append("actual = :actual")
        if after.meter_pending:
            # Stays in the sweep's index until the usage record is known sent (mark_metered).
            values[":gsk"] = string_attr(due_sort_key(now + METER_RETRY_AFTER, after.reservation_id))
            sets.append("gsi1sk = :gsk")
            update = "SET " + ", ".join(sets)
        else:
            update = "SET " + ", ".join(sets) + " REMOVE gsi1pk, gsi1sk"
        return {
            "Update": {
                "TableName": self._table,
                "Key": reservation_key(before.tenant_id, before.reservation_id),
                "UpdateExpression": update,
                # THE give-back guard: only a held reservation can be resolved, once.
                "ConditionExpression": "#st = :held",
                "ExpressionAttributeNames": {"#st": "state"},
                "ExpressionAttributeValues": values,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    @staticmethod
    def _give_back_expression(quantity: Decimal, reserved_at: datetime) -> dict[str, Any]:
        return {
            "UpdateExpression": "SET #rem = #rem + :q, #used = #used - :q",
            # Still the period the estimate was taken from, never below zero used, never a frozen counter.
            "ConditionExpression": "#used >= :q AND #ps <= :at AND #pe > :at AND #st <> :retired",
            "ExpressionAttributeNames": {
                "#rem": "remaining",
                "#used": "used",
                "#ps": "period_start",
                "#pe": "period_end",
                "#st": "state",
            },
            "ExpressionAttributeValues": {
                ":q": number_attr(quantity),
                ":at": number_attr(to_epoch(reserved_at)),
                ":retired": string_attr(CounterState.RETIRED.value),
            },
        }

    def mark_metered(self, reservation: Reservation) -> None:
        """The settle's usage record is on the queue: leave the sweep's index."""
        try:
            self.client.update_item(
                TableName=self._table,
                Key=reservation_key(reservation.tenant_id, reservation.reservation_id),
                UpdateExpression="SET meter_pending = :f REMOVE gsi1pk, gsi1sk",
                ConditionExpression="meter_pending = :t",
                ExpressionAttributeValues={":f": {"BOOL": False}, ":t": {"BOOL": True}},
            )
        except ClientError as err:
            if not lost_race(err):  # already marked (a racing re-send)
                raise

    def due(self, partition: int, now: datetime, *, limit: int = 100) -> list[Reservation]:
        """Reservations of one index partition whose due time (expiry, or meter retry) is at or before now.
        The index is eventually consistent: callers re-check through the conditional transition."""
        found: list[Reservation] = []
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": DUE_INDEX,
            "KeyConditionExpression": "gsi1pk = :p AND gsi1sk < :upto",
            "ExpressionAttributeValues": {
                ":p": string_attr(f"RSVDUE#{partition:02d}"),
                # Every sort key of a due time <= now sorts below the next second's prefix.
                ":upto": string_attr(f"{to_epoch(now) + 1:012d}"),
            },
            "Limit": limit,
        }
        while True:
            response = self.client.query(**request)
            found.extend(reservation_from_item(item) for item in response.get("Items", []))
            start = response.get("LastEvaluatedKey")
            if not start or len(found) >= limit:
                return found
            request["ExclusiveStartKey"] = start

    def open_for_tenant(self, tenant_id: str, *, limit: int) -> list[Reservation]:
        """The tenant's held reservations, soonest due first. Reads the open-work index (every partition,
        filtered by tenant): its cost follows the platform's open holds, which live minutes, not the
        tenant's history. Eventually consistent, like every index read."""
        found: list[Reservation] = []
        for partition in range(DUE_PARTITIONS):
            request: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": DUE_INDEX,
                "KeyConditionExpression": "gsi1pk = :p",
                "FilterExpression": "tenant_id = :t AND #state = :held",
                "ExpressionAttributeNames": {"#state": "state"},
                "ExpressionAttributeValues": {
                    ":p": string_attr(f"RSVDUE#{partition:02d}"),
                    ":t": string_attr(tenant_id),
                    ":held": string_attr(ReservationState.HELD.value),
                },
            }
            while True:
                response = self.client.query(**request)
                found.extend(reservation_from_item(item) for item in response.get("Items", []))
                start = response.get("LastEvaluatedKey")
                if not start:
                    break
                request["ExclusiveStartKey"] = start
        found.sort(key=lambda r: (r.due_at, r.reservation_id))
        return found[:limit]

    def grant_key_of(self, reservation: Reservation, grant_id: str) -> Item:
        return grant_key(reservation.tenant_id, reservation.resource_type, grant_id)

    def counter_key_of(self, reservation: Reservation, shard: int) -> Item:
        return counter_key(reservation.tenant_id, reservation.resource_type, shard, reservation.layout)


def _refill_item(table: str, refill: GrantRefill, now: datetime) -> dict[str, Any]:
    """A grant's part of a give-back: only while the grant is active and unexpired (an expired or voided
    grant's units are forfeited, not revived) and has drawn at least that much (never above its amount)."""
    return {
        "Update": {
            "TableName": table,
            "Key": refill.key,
            "UpdateExpression": "SET #rem = #rem + :q, #used = #used - :q, updated_at = :iso",
            "ConditionExpression": (
                "#st = :active AND #used >= :q AND (attribute_not_exists(valid_until) OR valid_until > :now)"
            ),
            "ExpressionAttributeNames": {"#rem": "remaining", "#used": "used", "#st": "state"},
            "ExpressionAttributeValues": {
                ":q": number_attr(refill.quantity),
                ":active": string_attr(GrantState.ACTIVE.value),
                ":now": number_attr(to_epoch(now)),
                ":iso": string_attr(now.isoformat()),
            },
        }
    }
