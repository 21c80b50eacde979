"""DynamoDB access for grants (the only grant code that speaks boto3).

Item layout: `GRANTS#<tenant>` / `GRANT#<resource>#<grant_id>`, attributes as fixed in the grant-item
contract (README "Grants and top-ups"): one partition per tenant for its grants, never a counter's
partition, so drawing a grant never contends with the quota hot path. Grants with an expiry also carry
`gsi1pk`/`gsi1sk` (the expiry index) so a scheduled job can find the ones that expired with a balance.

Every write is conditional: creation only where no grant with that id exists (a Stripe grant's id is
derived from its source, so a retried webhook creates nothing), a draw only while the grant is active,
unexpired and holds the take, a void only of the remainder seen. Creations and voids commit in one
transaction with their audit entry.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from billing_platform import clients
from billing_platform.audit.log import AuditEntry, AuditLog
from billing_platform.conditions import applied
from billing_platform.grants.models import (
    Grant,
    GrantSource,
    GrantState,
    epoch_or_none,
    expiry_bucket,
)
from billing_platform.instants import to_epoch
from billing_platform.quantities import ZERO
from billing_platform.settings import Settings, get_settings

Item = dict[str, Any]
ENTITY = "GRANT"


def _n(value: Decimal | int) -> dict[str, str]:
    return {"N": format(value, "f") if isinstance(value, Decimal) else str(value)}


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def grants_pk(tenant_id: str) -> str:
    return f"GRANTS#{tenant_id}"


def grant_sk(resource_type: str, grant_id: str) -> str:
    return f"GRANT#{resource_type}#{grant_id}"


def grant_key(tenant_id: str, resource_type: str, grant_id: str) -> Item:
    return {"pk": _s(grants_pk(tenant_id)), "sk": _s(grant_sk(resource_type, grant_id))}


def expiry_index_keys(tenant_id: str, grant_id: str, valid_until: datetime) -> Item:
    """`gsi1pk = GRANT_EXPIRY#<day>#<bucket>`, `gsi1sk = <10-digit epoch>#<tenant>#<grant>`."""
    day = valid_until.date().isoformat()  # zero-padded for any year, unlike strftime's %Y
    return {
        "gsi1pk": _s(f"GRANT_EXPIRY#{day}#{expiry_bucket(tenant_id, grant_id)}"),
        "gsi1sk": _s(f"{to_epoch(valid_until):010d}#{tenant_id}#{grant_id}"),
    }


def grant_to_item(grant: Grant) -> Item:
    item: Item = {
        **grant_key(grant.tenant_id, grant.resource_type, grant.grant_id),
        "entity": _s(ENTITY),
        "tenant_id": _s(grant.tenant_id),
        "resource_type": _s(grant.resource_type),
        "grant_id": _s(grant.grant_id),
        "amount": _n(grant.amount),
        "remaining": _n(grant.remaining),
        "used": _n(grant.used),
        "priority": _n(grant.priority),
        "state": _s(grant.state.value),
        "source": _s(grant.source.value),
        "source_id": _s(grant.source_id),
        "created_at": _s(grant.created_at.isoformat()),
        "created_by": _s(grant.created_by),
        "updated_at": _s(grant.created_at.isoformat()),
    }
    if grant.valid_until is not None:
        item["valid_until"] = _n(to_epoch(grant.valid_until))
        item.update(expiry_index_keys(grant.tenant_id, grant.grant_id, grant.valid_until))
    if grant.price_id:
        item["price_id"] = _s(grant.price_id)
    if grant.reason:
        item["reason"] = _s(grant.reason)
    return item


def grant_from_item(item: Item) -> Grant:
    def text(name: str) -> str | None:
        return item[name]["S"] if name in item else None

    voided_at = text("voided_at")
    return Grant(
        tenant_id=item["tenant_id"]["S"],
        resource_type=item["resource_type"]["S"],
        grant_id=item["grant_id"]["S"],
        amount=Decimal(item["amount"]["N"]),
        remaining=Decimal(item["remaining"]["N"]),
        used=Decimal(item["used"]["N"]),
        priority=int(item["priority"]["N"]),
        valid_until=epoch_or_none(int(item["valid_until"]["N"])) if "valid_until" in item else None,
        state=GrantState(item["state"]["S"]),
        source=GrantSource(item["source"]["S"]),
        source_id=item["source_id"]["S"],
        created_at=datetime.fromisoformat(item["created_at"]["S"]),
        created_by=item["created_by"]["S"],
        price_id=text("price_id"),
        reason=text("reason"),
        voided_amount=Decimal(item["voided_amount"]["N"]) if "voided_amount" in item else ZERO,
        voided_at=datetime.fromisoformat(voided_at) if voided_at else None,
        voided_by=text("voided_by"),
    )


class GrantRepository:
    """Grant items of the billing table. Methods report a lost condition as False / None; they never
    retry on their own (boto3's standard retry mode handles throttling)."""

    def __init__(self, settings: Settings | None = None, client: Any = None) -> None:
        self._settings = settings or get_settings()
        self._table = self._settings.billing_table_name
        self._client = client
        self._audit = AuditLog(self._settings, client)

    @property
    def client(self) -> Any:
        return self._client or clients.dynamodb()

    # --- create ---------------------------------------------------------------------------------

    def create(self, grants: list[Grant], audit: AuditEntry) -> bool:
        """Create every grant and the audit entry in one transaction, only if none of the grants exists
        yet. False when one does: the same source was granted before (a webhook retry), nothing written."""
        if not 1 <= len(grants) <= 99:
            raise ValueError("between 1 and 99 grants per creation")
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": grant_to_item(grant),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
            for grant in grants
        ]
        items.append(self._audit.put_item_request(audit))
        return applied(lambda: self.client.transact_write_items(TransactItems=items))

    # --- read -----------------------------------------------------------------------------------

    def list(self, tenant_id: str, resource_type: str | None = None, *, consistent: bool = True) -> list[Grant]:
        """Every grant of the tenant (of one resource), in key order. Strongly consistent by default:
        the slow consume path plans its draw from this read."""
        prefix = f"GRANT#{resource_type}#" if resource_type else "GRANT#"
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": _s(grants_pk(tenant_id)), ":prefix": _s(prefix)},
            "ConsistentRead": consistent,
        }
        grants: list[Grant] = []
        while True:
            response = self.client.query(**kwargs)
            grants.extend(grant_from_item(item) for item in response.get("Items", []))
            start = response.get("LastEvaluatedKey")
            if not start:
                return grants
            kwargs["ExclusiveStartKey"] = start

    def find(self, tenant_id: str, grant_id: str) -> Grant | None:
        """A grant by id alone (the DELETE route knows no resource type)."""
        return next((g for g in self.list(tenant_id) if g.grant_id == grant_id), None)

    # --- draw -----------------------------------------------------------------------------------

    def draw_request(self, grant: Grant, take: Decimal, now: datetime) -> dict[str, Any]:
        """The `Update` of one grant inside a consume transaction: only while it is active, unexpired
        at `now` and holds `take` (remaining never goes below zero, an expired grant never pays)."""
        return {
            "Update": {
                "TableName": self._table,
                "Key": grant_key(grant.tenant_id, grant.resource_type, grant.grant_id),
                "UpdateExpression": "SET #rem = #rem - :q, #used = #used + :q, updated_at = :at",
                "ConditionExpression": (
                    "#st = :active AND #rem >= :q AND (attribute_not_exists(valid_until) OR valid_until > :now)"
                ),
                "ExpressionAttributeNames": {"#rem": "remaining", "#used": "used", "#st": "state"},
                "ExpressionAttributeValues": {
                    ":q": _n(take),
                    ":active": _s(GrantState.ACTIVE.value),
                    ":now": _n(to_epoch(now)),
                    ":at": _s(now.isoformat()),
                },
            }
        }

    # --- void -----------------------------------------------------------------------------------

    def void(self, grant: Grant, actor: str, now: datetime, audit: AuditEntry) -> bool:
        """Void the remainder `grant` was read with (and its audit entry) in one transaction. False when
        the grant changed since (a draw, another void): the caller re-reads, so the audited remainder is
        exactly the one voided."""
        update = {
            "Update": {
                "TableName": self._table,
                "Key": grant_key(grant.tenant_id, grant.resource_type, grant.grant_id),
                "UpdateExpression": (
                    "SET #st = :voided, voided_amount = #rem, #rem = :zero, voided_at = :at, voided_by = :by, "
                    "updated_at = :at"
                ),
                "ConditionExpression": "#st = :active AND #rem = :seen",
                "ExpressionAttributeNames": {"#st": "state", "#rem": "remaining"},
                "ExpressionAttributeValues": {
                    ":voided": _s(GrantState.VOIDED.value),
                    ":active": _s(GrantState.ACTIVE.value),
                    ":zero": _n(ZERO),
                    ":seen": _n(grant.remaining),
                    ":at": _s(now.isoformat()),
                    ":by": _s(actor),
                },
            }
        }
        return applied(
            lambda: self.client.transact_write_items(TransactItems=[update, self._audit.put_item_request(audit)])
        )
