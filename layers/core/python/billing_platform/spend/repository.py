"""Spend items of the billing table.

- `TENANT#<tid>` / `SPENDCAP`: the tenant's cap (currency, amount, kind, per-resource caps, thresholds).
- `SPEND#<tid>` / `PERIOD#<period_end epoch>`: one period's spend: per resource `u_<resource>` (usage
  counted) and `s_<resource>` (its exact amount), `spend` (their total), per entity `se_<entity>` (what the
  takes made for it cost), and the cap in force (`cap`,
  `thresholds`) so the stream alone tells a threshold crossing. Expires 400 days after the period.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from billing_platform.conditions import applied
from billing_platform.dynamodb import BillingTable, decimal_of, number_attr, string_attr
from billing_platform.instants import from_epoch, to_epoch
from billing_platform.quantities import ZERO
from billing_platform.spend.models import CapKind, SpendCap, SpendState, SpendStep

Item = dict[str, Any]
SPEND_ITEM_DAYS = 400


def cap_key(tenant_id: str) -> Item:
    return {"pk": string_attr(f"TENANT#{tenant_id}"), "sk": string_attr("SPENDCAP")}


def spend_key(tenant_id: str, period_end: datetime) -> Item:
    return {"pk": string_attr(f"SPEND#{tenant_id}"), "sk": string_attr(f"PERIOD#{to_epoch(period_end)}")}


def cap_from_item(tenant_id: str, item: Item) -> SpendCap:
    resources = {name: Decimal(value["N"]) for name, value in item.get("resources", {}).get("M", {}).items()}
    entities = {name: Decimal(value["N"]) for name, value in item.get("entities", {}).get("M", {}).items()}
    thresholds = tuple(Decimal(t) for t in item.get("thresholds", {}).get("S", "").split(",") if t)
    return SpendCap(
        tenant_id=tenant_id,
        currency=item["currency"]["S"],
        amount=Decimal(item["amount"]["N"]),
        kind=CapKind(item["kind"]["S"]),
        resources=resources,
        entities=entities,
        thresholds=thresholds,
        set_by=item.get("set_by", {}).get("S", ""),
        set_at=from_epoch(int(item["set_at"]["N"])) if "set_at" in item else None,
    )


def state_from_item(item: Item | None) -> SpendState:
    if not item:
        return SpendState()
    used = {name[2:]: decimal_of(value) for name, value in item.items() if name.startswith("u_")}
    spent = {name[2:]: decimal_of(value) for name, value in item.items() if name.startswith("s_")}
    by_entity = {name[3:]: decimal_of(value) for name, value in item.items() if name.startswith("se_")}
    total = decimal_of(item["spend"]) if "spend" in item else ZERO
    return SpendState(used=used, spent=spent, total=total, by_entity=by_entity)


def _at_most(name: str, bound: Decimal, values: dict[str, Any], placeholder: str) -> str:
    """`name <= bound`, a missing attribute counting as zero."""
    values[placeholder] = number_attr(bound)
    return f"(attribute_not_exists({name}) OR {name} <= {placeholder})" if bound >= 0 else f"{name} <= {placeholder}"


def spend_update(
    table: str,
    key: Item,
    resource: str,
    step: SpendStep,
    cap: SpendCap,
    period_end: datetime,
    *,
    entity_id: str | None = None,
) -> dict[str, Any]:
    """The spend item's part of a take's (or a give-back's: negative quantity) transaction: add the step,
    conditioned on the usage it was priced at (its piece, or exactly) and, for a take under a hard cap, on
    the spend staying within the period's cap and the resource's. Returns the item as it was when the
    condition fails (the caller prices again or refuses)."""
    names = {"#u": f"u_{resource}", "#s": f"s_{resource}", "#sp": "spend", "#cap": "cap", "#th": "thresholds"}
    names |= {"#exp": "expires_at", "#pe": "period_end", "#cur": "currency"}
    values: dict[str, Any] = {
        ":zero": number_attr(ZERO),
        ":q": number_attr(step.quantity),
        ":d": number_attr(step.delta),
        ":cap": number_attr(cap.amount),
        ":th": string_attr(",".join(str(t) for t in cap.thresholds)),
        ":exp": number_attr(to_epoch(period_end + timedelta(days=SPEND_ITEM_DAYS))),
        ":pe": number_attr(to_epoch(period_end)),
        ":cur": string_attr(cap.currency),
    }
    conditions = [_usage_condition(step, values)]
    # A give-back is never refused by the cap: a reservation must resolve and a release must go through.
    # Under volume tiers giving units back can raise the line (the whole line falls into a dearer tier):
    # that is the one way the spend can pass a hard cap, and only by the rating of the usage kept.
    if cap.hard and step.delta > 0 and step.quantity > 0:
        conditions.append(_at_most("#sp", cap.amount - step.delta, values, ":capd"))
        resource_cap = cap.resources.get(resource)
        if resource_cap is not None:
            conditions.append(_at_most("#s", resource_cap - step.delta, values, ":rcapd"))
    update = (
        "SET #u = if_not_exists(#u, :zero) + :q, #s = if_not_exists(#s, :zero) + :d, "
        "#sp = if_not_exists(#sp, :zero) + :d, #cap = :cap, #th = :th, #exp = :exp, #pe = :pe, #cur = :cur"
    )
    if entity_id is not None:
        # The entity's line: what the takes made for it cost (their steps, at the tenant's usage).
        names["#se"] = f"se_{entity_id}"
        update += ", #se = if_not_exists(#se, :zero) + :d"
        entity_cap = cap.entities.get(entity_id)
        if cap.hard and step.delta > 0 and step.quantity > 0 and entity_cap is not None:
            conditions.append(_at_most("#se", entity_cap - step.delta, values, ":ecapd"))
    return {
        "Update": {
            "TableName": table,
            "Key": key,
            "UpdateExpression": update,
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }


def _usage_condition(step: SpendStep, values: dict[str, Any]) -> str:
    """The usage before the step must be where it was priced: inside its piece together with the usage after
    it (a take adds `quantity`, a give-back a negative one), or exactly the usage seen. A missing attribute
    is usage zero."""
    piece = step.piece
    if piece is None:
        values[":seen"] = number_attr(step.exactly)
        return "(attribute_not_exists(#u) OR #u = :seen)" if step.exactly == 0 else "#u = :seen"
    # used and used + q both in the piece, written without arithmetic on the attribute.
    low = piece.low - min(step.quantity, ZERO)
    parts = [f"#u {'>=' if piece.low_closed else '>'} :lo"]
    values[":lo"] = number_attr(low)
    if piece.high is not None:
        values[":hiq"] = number_attr(piece.high - max(step.quantity, ZERO))
        parts.append(f"#u {'<=' if piece.high_closed else '<'} :hiq")
    inside = " AND ".join(parts)
    if piece.holds(ZERO) and piece.holds(step.quantity):
        return f"(attribute_not_exists(#u) OR ({inside}))"
    return f"({inside})"


class SpendRepository(BillingTable):
    """Caps and spend items (reads and the cap's writes; the spend item is written inside takes)."""

    def get_item(self, key: Item) -> Item | None:
        """One item, strongly consistent."""
        item: Item | None = self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item")
        return item

    def get_cap(self, tenant_id: str) -> SpendCap | None:
        item = self.get_item(cap_key(tenant_id))
        return cap_from_item(tenant_id, item) if item else None

    def put_cap(self, cap: SpendCap, now: datetime) -> None:
        item: Item = {
            **cap_key(cap.tenant_id),
            "currency": string_attr(cap.currency),
            "amount": number_attr(cap.amount),
            "kind": string_attr(cap.kind.value),
            "resources": {"M": {r: number_attr(a) for r, a in cap.resources.items()}},
            "entities": {"M": {e: number_attr(a) for e, a in cap.entities.items()}},
            "thresholds": string_attr(",".join(str(t) for t in cap.thresholds)),
            "set_by": string_attr(cap.set_by),
            "set_at": number_attr(to_epoch(now)),
        }
        self.client.put_item(TableName=self.table, Item=item)

    def seed(
        self, tenant_id: str, period_end: datetime, used: dict[str, Decimal], spent: dict[str, Decimal], cap: SpendCap
    ) -> bool:
        """Start the period's spend item at the usage already counted and its rated amount (a cap set after
        usage in the period), unless the item exists. False: it existed (left as it is)."""
        item: Item = {
            **spend_key(tenant_id, period_end),
            **{f"u_{r}": number_attr(q) for r, q in used.items()},
            **{f"s_{r}": number_attr(a) for r, a in spent.items()},
            "spend": number_attr(sum(spent.values(), ZERO)),
            "cap": number_attr(cap.amount),
            "thresholds": string_attr(",".join(str(t) for t in cap.thresholds)),
            "currency": string_attr(cap.currency),
            "period_end": number_attr(to_epoch(period_end)),
            "expires_at": number_attr(to_epoch(period_end + timedelta(days=SPEND_ITEM_DAYS))),
        }
        return applied(
            lambda: self.client.put_item(
                TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(pk)"
            )
        )

    def delete_cap(self, tenant_id: str) -> None:
        self.client.delete_item(TableName=self.table, Key=cap_key(tenant_id))

    def get_state(self, tenant_id: str, period_end: datetime) -> SpendState:
        return state_from_item(self.get_item(spend_key(tenant_id, period_end)))
