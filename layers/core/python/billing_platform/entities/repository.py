"""DynamoDB access for entities and their limits (the billing table), the only entities code that speaks boto3.

- `ENTITY#<tid>#<eid>` / `ENTITY`: the entity (parent, ancestors, the resources it limits, how many children
  and bound keys it has); listed through gsi1 `TENANT#<tid>#ENTITIES`.
- `ENTITY#<tid>#<eid>` / `LIMIT#<resource>`: the limit's terms AND its counter (`limit`, `used`, `remaining`,
  `period_end`, and the window attributes of `billing_platform.levels`): one item, so a take updates one item
  per level, and changing a limit recomputes `remaining = limit - used` atomically with concurrent takes.

Every mutation is one transaction with its audit entry; a child's creation counts in its parent
(`children`), a key's binding in its entity (`keys`), so an entity with either can never be deleted.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billing_platform.catalog.models import Window, parse_window_marker, window_marker
from billing_platform.conditions import applied, transact_write_items
from billing_platform.dynamodb import (
    BillingTable,
    decimal_of,
    decode_cursor,
    encode_cursor,
    number_attr,
    string_attr,
)
from billing_platform.entities.models import Entity, EntityLimit, LimitKind, LimitTerms, LimitWrite
from billing_platform.levels import WINDOWS_ATTRIBUTE, window_attributes

Item = dict[str, Any]
ENTITY_SK = "ENTITY"
LIMIT_SK_PREFIX = "LIMIT#"


def entity_pk(tenant_id: str, entity_id: str) -> str:
    return f"ENTITY#{tenant_id}#{entity_id}"


def entity_key(tenant_id: str, entity_id: str) -> Item:
    return {"pk": string_attr(entity_pk(tenant_id, entity_id)), "sk": string_attr(ENTITY_SK)}


def limit_key(tenant_id: str, entity_id: str, resource_type: str) -> Item:
    return {"pk": string_attr(entity_pk(tenant_id, entity_id)), "sk": string_attr(LIMIT_SK_PREFIX + resource_type)}


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def entity_from_item(item: Item) -> Entity:
    return Entity(
        tenant_id=item["tenant_id"]["S"],
        entity_id=item["entity_id"]["S"],
        created_at=datetime.fromisoformat(item["created_at"]["S"]),
        parent_id=item.get("parent_id", {}).get("S"),
        ancestors=tuple(a["S"] for a in item.get("ancestors", {}).get("L", [])),
        kind=item.get("kind", {}).get("S"),
        name=item.get("name", {}).get("S"),
        limited=frozenset(item.get("limited", {}).get("SS", [])),
        children=int(item.get("children", {"N": "0"})["N"]),
        keys=int(item.get("keys", {"N": "0"})["N"]),
    )


def limit_from_item(item: Item) -> EntityLimit:
    marker = item.get(WINDOWS_ATTRIBUTE, {}).get("S", "")
    windows = parse_window_marker(marker)
    state: dict[Window, tuple[int, Decimal]] = {}
    for window in windows:
        end, _rem, used = window_attributes(window)
        if end in item:
            state[window] = (int(item[end]["N"]), decimal_of(item.get(used)))
    terms = LimitTerms(
        kind=LimitKind(item["kind"]["S"]),
        amount=decimal_of(item["amount"]) if "amount" in item else None,
        share_percent=decimal_of(item["share_percent"]) if "share_percent" in item else None,
        windows=windows,
    )
    period_end = int(item["period_end"]["N"]) if "period_end" in item else None
    return EntityLimit(
        tenant_id=item["tenant_id"]["S"],
        entity_id=item["entity_id"]["S"],
        resource_type=item["resource_type"]["S"],
        terms=terms,
        limit=decimal_of(item.get("limit")),
        used=decimal_of(item.get("used")),
        remaining=decimal_of(item.get("remaining")),
        period_end=datetime.fromtimestamp(period_end, UTC) if period_end is not None else None,
        window_state=state,
    )


def _entity_item(entity: Entity) -> Item:
    item: Item = {
        **entity_key(entity.tenant_id, entity.entity_id),
        "gsi1pk": string_attr(f"TENANT#{entity.tenant_id}#ENTITIES"),
        "gsi1sk": string_attr(entity.entity_id),
        "tenant_id": string_attr(entity.tenant_id),
        "entity_id": string_attr(entity.entity_id),
        "ancestors": {"L": [string_attr(a) for a in entity.ancestors]},
        "children": number_attr(0),
        "keys": number_attr(0),
        "created_at": string_attr(entity.created_at.isoformat()),
    }
    for name, value in (("parent_id", entity.parent_id), ("kind", entity.kind), ("name", entity.name)):
        if value is not None:
            item[name] = string_attr(value)
    return item


class EntityRepository(BillingTable):
    """Entities, their limits and counters, key bindings (see the module docstring)."""

    # --- reads --------------------------------------------------------------------------------

    def get(self, tenant_id: str, entity_id: str) -> Entity | None:
        response = self.client.get_item(TableName=self.table, Key=entity_key(tenant_id, entity_id), ConsistentRead=True)
        item = response.get("Item")
        return entity_from_item(item) if item else None

    def get_many(self, tenant_id: str, entity_ids: list[str]) -> dict[str, Entity]:
        """Strongly consistent batch read of entities (missing ones are left out)."""
        if not entity_ids:
            return {}
        keys = [entity_key(tenant_id, e) for e in dict.fromkeys(entity_ids)]
        found: dict[str, Entity] = {}
        request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
        while request:
            response = self.client.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(self.table, []):
                entity = entity_from_item(item)
                found[entity.entity_id] = entity
            request = response.get("UnprocessedKeys") or {}
        return found

    def get_limit_items(self, keys: list[Item]) -> list[Item]:
        """Strongly consistent batch read of limit (or counter) items, in any order."""
        found: list[Item] = []
        request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}} if keys else {}
        while request:
            response = self.client.batch_get_item(RequestItems=request)
            found.extend(response.get("Responses", {}).get(self.table, []))
            request = response.get("UnprocessedKeys") or {}
        return found

    def get_limit(self, tenant_id: str, entity_id: str, resource_type: str) -> EntityLimit | None:
        response = self.client.get_item(
            TableName=self.table, Key=limit_key(tenant_id, entity_id, resource_type), ConsistentRead=True
        )
        item = response.get("Item")
        return limit_from_item(item) if item else None

    def limits_of(self, tenant_id: str, entity_id: str) -> list[EntityLimit]:
        response = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :limit)",
            ExpressionAttributeValues={
                ":pk": string_attr(entity_pk(tenant_id, entity_id)),
                ":limit": string_attr(LIMIT_SK_PREFIX),
            },
            ConsistentRead=True,
        )
        return [limit_from_item(item) for item in response.get("Items", [])]

    def list(self, tenant_id: str, *, limit: int, cursor: str | None) -> tuple[list[Entity], str | None]:
        gsi1pk = f"TENANT#{tenant_id}#ENTITIES"
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :g",
            "ExpressionAttributeValues": {":g": string_attr(gsi1pk)},
            "Limit": limit,
        }
        start = decode_cursor(cursor, expected={"gsi1pk": gsi1pk}, names={"pk", "sk", "gsi1pk", "gsi1sk"})
        if start:
            kwargs["ExclusiveStartKey"] = start
        response = self.client.query(**kwargs)
        return [entity_from_item(i) for i in response.get("Items", [])], encode_cursor(response.get("LastEvaluatedKey"))

    # --- entity writes ------------------------------------------------------------------------

    def create(self, entity: Entity, audit_put: Item) -> bool:
        """The entity, its parent's child count (the parent must still exist at the depth seen) and the
        audit entry, in one transaction. False when the id is taken or the parent vanished meanwhile."""
        items: list[Item] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": _entity_item(entity),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]
        if entity.parent_id is not None:
            items.append(
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": entity_key(entity.tenant_id, entity.parent_id),
                        "UpdateExpression": "ADD #ch :one",
                        "ConditionExpression": "attribute_exists(pk) AND size(#anc) = :depth",
                        "ExpressionAttributeNames": {"#ch": "children", "#anc": "ancestors"},
                        "ExpressionAttributeValues": {
                            ":one": number_attr(1),
                            ":depth": number_attr(len(entity.ancestors) - 1),
                        },
                    }
                }
            )
        items.append(audit_put)
        return applied(lambda: transact_write_items(self.client, items))

    def rename(self, entity: Entity, audit_put: Item) -> bool:
        """Set the entity's kind and name (its parent never changes). False if it was deleted meanwhile."""
        names = {"#k": "kind", "#n": "name"}
        sets, removes, values = [], [], {}
        for placeholder, value in (("#k", entity.kind), ("#n", entity.name)):
            if value is None:
                removes.append(placeholder)
            else:
                sets.append(f"{placeholder} = :{placeholder[1]}")
                values[f":{placeholder[1]}"] = string_attr(value)
        update = ("SET " + ", ".join(sets) if sets else "") + (" REMOVE " + ", ".join(removes) if removes else "")
        request: Item = {
            "TableName": self.table,
            "Key": entity_key(entity.tenant_id, entity.entity_id),
            "UpdateExpression": update.strip(),
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeNames": names,
        }
        if values:
            request["ExpressionAttributeValues"] = values
        return applied(lambda: transact_write_items(self.client, [{"Update": request}, audit_put]))

    def delete(self, entity: Entity, audit_put: Item) -> bool:
        """Remove the entity and its limits with the audit entry, only while it has no child and no bound
        key; its parent's child count goes down in the same transaction. False: it changed meanwhile."""
        items: list[Item] = [
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": entity_key(entity.tenant_id, entity.entity_id),
                    "ConditionExpression": "#ch = :zero AND #keys = :zero",
                    "ExpressionAttributeNames": {"#ch": "children", "#keys": "keys"},
                    "ExpressionAttributeValues": {":zero": number_attr(0)},
                }
            }
        ]
        items += [
            {"Delete": {"TableName": self.table, "Key": limit_key(entity.tenant_id, entity.entity_id, r)}}
            for r in sorted(entity.limited)
        ]
        if entity.parent_id is not None:
            items.append(
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": entity_key(entity.tenant_id, entity.parent_id),
                        "UpdateExpression": "ADD #ch :minus",
                        "ConditionExpression": "attribute_exists(pk)",
                        "ExpressionAttributeNames": {"#ch": "children"},
                        "ExpressionAttributeValues": {":minus": number_attr(-1)},
                    }
                }
            )
        items.append(audit_put)
        return applied(lambda: transact_write_items(self.client, items))

    # --- limits -------------------------------------------------------------------------------

    def put_limit(self, write: LimitWrite, existing: EntityLimit | None, audit_put: Item) -> bool:
        """Set an entity's limit on a resource with its audit entry, in one transaction. A new limit starts
        its counter at zero for the current period; a changed one keeps `used` and recomputes
        `remaining = limit - used` atomically with concurrent takes. False when the entity vanished or the
        limit appeared or disappeared meanwhile."""
        tenant_id, entity_id, resource_type = write.tenant_id, write.entity_id, write.resource_type
        terms, limit, period_end = write.terms, write.limit, write.period_end
        key = limit_key(tenant_id, entity_id, resource_type)
        marker = window_marker(terms.windows)
        definition: Item = {"kind": string_attr(terms.kind.value), "limit": number_attr(limit)}
        if terms.amount is not None:
            definition["amount"] = number_attr(terms.amount)
        if terms.share_percent is not None:
            definition["share_percent"] = number_attr(terms.share_percent)
        if existing is None:
            item = {
                **key,
                **definition,
                "tenant_id": string_attr(tenant_id),
                "entity_id": string_attr(entity_id),
                "resource_type": string_attr(resource_type),
                "used": number_attr(0),
                "remaining": number_attr(limit),
                "period_start": number_attr(_epoch(write.period_start)),
                "period_end": number_attr(_epoch(period_end)),
            }
            if marker:
                item[WINDOWS_ATTRIBUTE] = string_attr(marker)
            change: Item = {
                "Put": {"TableName": self.table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}
            }
        else:
            change = {"Update": self._limit_update(key, definition, terms, marker, existing)}
        mark = {
            "Update": {
                "TableName": self.table,
                "Key": entity_key(tenant_id, entity_id),
                "UpdateExpression": "ADD #ltd :r",
                "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeNames": {"#ltd": "limited"},
                "ExpressionAttributeValues": {":r": {"SS": [resource_type]}},
            }
        }
        return applied(lambda: transact_write_items(self.client, [change, mark, audit_put]))

    def _limit_update(self, key: Item, definition: Item, terms: LimitTerms, marker: str, existing: EntityLimit) -> Item:
        names = {"#lim": "limit", "#rem": "remaining", "#used": "used", "#kind": "kind", "#win": WINDOWS_ATTRIBUTE}
        values: Item = {":lim": definition["limit"], ":kind": definition["kind"]}
        sets = ["#kind = :kind", "#lim = :lim", "#rem = :lim - #used"]
        removes = []
        for attr in ("amount", "share_percent"):
            names[f"#{attr}"] = attr
            if attr in definition:
                sets.append(f"#{attr} = :{attr}")
                values[f":{attr}"] = definition[attr]
            else:
                removes.append(f"#{attr}")
        if marker:
            sets.append("#win = :win")
            values[":win"] = string_attr(marker)
        else:
            removes.append("#win")
        zero = number_attr(0)
        for window in Window:
            end, rem, used = window_attributes(window)
            tag = window.value
            names.update({f"#{tag}_rem": rem, f"#{tag}_used": used, f"#{tag}_end": end})
            if window in terms.windows:
                # A live window keeps what it used against the new limit; one not started yet starts at the
                # next take (its end is missing, so that take aligns it first).
                values[f":{tag}_lim"] = number_attr(terms.windows[window])
                values[":zero"] = zero
                sets.append(f"#{tag}_rem = :{tag}_lim - if_not_exists(#{tag}_used, :zero)")
            elif window in existing.terms.windows:
                removes += [f"#{tag}_rem", f"#{tag}_used", f"#{tag}_end"]
        used_names = set(re.findall(r"#\w+", " ".join(sets + removes)))
        names = {k: v for k, v in names.items() if k in used_names}
        update = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        return {
            "TableName": self.table,
            "Key": key,
            "UpdateExpression": update,
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def delete_limit(self, tenant_id: str, entity_id: str, resource_type: str, audit_put: Item) -> bool:
        """Remove an entity's limit on a resource (its counter with it) and the entity's mark, audited."""
        items: list[Item] = [
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": limit_key(tenant_id, entity_id, resource_type),
                    "ConditionExpression": "attribute_exists(pk)",
                }
            },
            {
                "Update": {
                    "TableName": self.table,
                    "Key": entity_key(tenant_id, entity_id),
                    "UpdateExpression": "DELETE #ltd :r",
                    "ConditionExpression": "attribute_exists(pk)",
                    "ExpressionAttributeNames": {"#ltd": "limited"},
                    "ExpressionAttributeValues": {":r": {"SS": [resource_type]}},
                }
            },
            audit_put,
        ]
        return applied(lambda: transact_write_items(self.client, items))

    def roll_period(self, key: Item, seen_end: int, period: tuple[datetime, datetime]) -> bool:
        """Start the entity counter's next period (used = 0), only if it still ends where the caller saw it
        end: of racing callers exactly one applies, so a period is never granted twice."""
        return applied(
            lambda: self.client.update_item(
                TableName=self.table,
                Key=key,
                UpdateExpression="SET #used = :zero, #rem = #lim, #ps = :start, #pe = :end",
                ConditionExpression="#pe = :seen",
                ExpressionAttributeNames={
                    "#used": "used",
                    "#rem": "remaining",
                    "#lim": "limit",
                    "#ps": "period_start",
                    "#pe": "period_end",
                },
                ExpressionAttributeValues={
                    ":zero": number_attr(0),
                    ":start": number_attr(_epoch(period[0])),
                    ":end": number_attr(_epoch(period[1])),
                    ":seen": number_attr(seen_end),
                },
            )
        )

    # --- key bindings -------------------------------------------------------------------------

    def bind_key(
        self, tenant_id: str, key_update: Item, old_entity: str | None, new_entity: str | None, audit_put: Item
    ) -> bool:
        """Move a key's binding (`key_update`: the key item's conditional update) from `old_entity` to
        `new_entity` (either None), keeping each entity's bound-key count, with the audit entry."""
        items: list[Item] = [key_update]
        for entity_id, delta in ((old_entity, -1), (new_entity, 1)):
            if entity_id is None:
                continue
            items.append(
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": entity_key(tenant_id, entity_id),
                        "UpdateExpression": "ADD #keys :d",
                        "ConditionExpression": "attribute_exists(pk)",
                        "ExpressionAttributeNames": {"#keys": "keys"},
                        "ExpressionAttributeValues": {":d": number_attr(delta)},
                    }
                }
            )
        items.append(audit_put)
        return applied(lambda: transact_write_items(self.client, items))
