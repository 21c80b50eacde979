"""The audit log: who changed what, when, under which request, with the state before and after.

Entries live in the billing table under `AUDIT#<tenant>` (a partition of their own, so audit writes
never contend with the tenant's quota counters) sorted by time. Callers pass redacted, JSON-safe
before/after snapshots: never secrets, API keys or card data.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from billing_platform import clients
from billing_platform.settings import Settings, get_settings

_FORBIDDEN_KEYS = {"secret", "api_key", "key_secret", "password", "card", "number", "cvc", "token"}


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("[redacted]" if k.lower() in _FORBIDDEN_KEYS else _redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


@dataclass(frozen=True)
class AuditEntry:
    tenant_id: str
    actor: str
    action: str
    target: str
    request_id: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    entry_id: str = field(default_factory=lambda: f"aud_{uuid.uuid4().hex}")

    def to_item(self) -> dict[str, Any]:
        return {
            "pk": {"S": f"AUDIT#{self.tenant_id}"},
            "sk": {"S": f"{self.at.isoformat()}#{self.entry_id}"},
            "entry_id": {"S": self.entry_id},
            "tenant_id": {"S": self.tenant_id},
            "actor": {"S": self.actor},
            "action": {"S": self.action},
            "target": {"S": self.target},
            "at": {"S": self.at.isoformat()},
            "request_id": {"S": self.request_id or ""},
            "before": {"S": json.dumps(_redact(self.before), default=str)},
            "after": {"S": json.dumps(_redact(self.after), default=str)},
        }

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> AuditEntry:
        return cls(
            tenant_id=item["tenant_id"]["S"],
            actor=item["actor"]["S"],
            action=item["action"]["S"],
            target=item["target"]["S"],
            request_id=item["request_id"]["S"] or None,
            before=json.loads(item["before"]["S"]),
            after=json.loads(item["after"]["S"]),
            at=datetime.fromisoformat(item["at"]["S"]),
            entry_id=item["entry_id"]["S"],
        )


class AuditLog:
    """Writes and reads audit entries. `put_item_request` lets a caller fold the entry into its own
    `TransactWriteItems`, so the mutation and its audit entry commit together."""

    def __init__(self, settings: Settings | None = None, client: Any = None) -> None:
        self._settings = settings or get_settings()
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or clients.dynamodb()

    def put_item_request(self, entry: AuditEntry) -> dict[str, Any]:
        return {"Put": {"TableName": self._settings.billing_table_name, "Item": entry.to_item()}}

    def record(self, entry: AuditEntry) -> AuditEntry:
        self.client.put_item(TableName=self._settings.billing_table_name, Item=entry.to_item())
        return entry

    def list(self, tenant_id: str, limit: int = 50, newest_first: bool = True) -> list[AuditEntry]:
        response = self.client.query(
            TableName=self._settings.billing_table_name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"AUDIT#{tenant_id}"}},
            ScanIndexForward=not newest_first,
            Limit=limit,
        )
        return [AuditEntry.from_item(item) for item in response.get("Items", [])]
