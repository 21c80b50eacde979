"""The audit log: who changed what, when, under which request, with the state before and after.

Entries live in the billing table under `AUDIT#<tenant>` (a partition of their own, so audit writes
never contend with the tenant's quota counters) sorted by time. Callers pass JSON-safe before/after
snapshots; whatever they pass goes through `redact` first, so a secret, an API key, a key hash or a
card number cannot land in an entry even by mistake: fields are dropped by name (`secret`, `password`,
`card_number`, `api_key`...) and string values are scrubbed by shape (Stripe/webhook/platform key
prefixes, Luhn-valid card numbers, bearer tokens).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from billing_platform.dynamodb import BillingTable, decode_cursor, encode_cursor

if TYPE_CHECKING:
    from billing_platform.auth.caller import Actor, Caller

REDACTED = "[redacted]"

# Field names whose value is never kept, compared case-insensitively on the whole name ...
_FORBIDDEN_NAMES = {
    "secret",
    "api_key",
    "apikey",
    "key_secret",
    "key_hash",
    "secret_hash",
    "password",
    "passwd",
    "card",
    "card_number",
    "number",
    "cvc",
    "cvv",
    "pan",
    "token",
    "authorization",
    "bearer",
    "client_secret",
    "private_key",
    "access_key",
    "secret_key",
    "session_token",
    "raw_key",
}
# ... and on each `_`/`-`/`.` separated part, so `stripe_secret_key` or `webhook.secret` are caught while
# `tokens` (a quota resource) or `idempotency_key` are kept.
_FORBIDDEN_PARTS = {"secret", "password", "passwd", "cvc", "cvv", "token", "authorization", "credential"}

# Values that are secrets whatever field holds them: Stripe secret/restricted/publishable-test keys,
# webhook signing secrets, the platform's own API keys, bearer headers.
_SECRET_VALUE = re.compile(
    r"(?:\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{4,}|\bwhsec_[A-Za-z0-9_]{4,}|\bbk_(?:live|test)_[A-Za-z0-9_-]{8,}"
    r"|\bbpt_[0-9a-f]{16}_[A-Za-z0-9_-]{8,}"
    r"|\bBearer\s+[A-Za-z0-9._~+/=-]{8,})"
)
# 13-19 digits, optionally separated by spaces or dashes, not part of a longer word (so ids such as
# `evt_1234...` stay): candidate card numbers, confirmed with the Luhn check.
_CARD_CANDIDATE = re.compile(r"(?<![\w-])(?:\d[ -]?){12,18}\d(?![\w-])")


def _luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _scrub_card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return REDACTED if 13 <= len(digits) <= 19 and _luhn_valid(digits) else match.group(0)


def scrub_text(text: str) -> str:
    """Replace secret-shaped substrings and card numbers in free text."""
    return _CARD_CANDIDATE.sub(_scrub_card, _SECRET_VALUE.sub(REDACTED, text))


def _forbidden(name: str) -> bool:
    lowered = name.lower()
    if lowered in _FORBIDDEN_NAMES:
        return True
    return any(part in _FORBIDDEN_PARTS for part in re.split(r"[_\-.\s]+", lowered))


def redact(value: Any) -> Any:
    """A copy of `value` with forbidden fields replaced and secret-shaped strings scrubbed (recursive)."""
    if isinstance(value, dict):
        return {str(k): (REDACTED if _forbidden(str(k)) else redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return scrub_text(value)
    return value


# Kept for callers of the first version of this module.
_redact = redact


def actor_from_caller(caller: Caller) -> str:
    """The audit `actor` for an authenticated caller: `operator:<principal>` or
    `tenant:<tenant>:key:<key id>` (a key id, never key material)."""
    if caller.is_operator:
        return f"operator:{caller.principal_id}"
    if caller.is_portal:
        return f"tenant:{caller.tenant_id}:portal:{caller.principal_id}"
    return f"tenant:{caller.tenant_id}:key:{caller.principal_id}"


def request_id_from_context(request_context: dict[str, Any] | None) -> str | None:
    """API Gateway's request id (the one in its access logs), or None outside API Gateway."""
    ctx = request_context or {}
    request_id = ctx.get("requestId") or ctx.get("extendedRequestId")
    return str(request_id) if request_id else None


@dataclass(frozen=True)
class AuditEntry:
    """One mutation. `before`/`after` are redacted when stored; `actor`/`target` are scrubbed too."""

    tenant_id: str
    actor: str
    action: str
    target: str
    request_id: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    entry_id: str = field(default_factory=lambda: f"aud_{uuid.uuid4().hex}")

    @classmethod
    def by(
        cls,
        actor: Actor,
        tenant_id: str,
        action: str,
        target: str,
        *,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> AuditEntry:
        """The entry of a mutation `actor` made: their principal, under their request id; `at` now unless given."""
        at = at or datetime.now(UTC)
        return cls(tenant_id, actor.principal_id, action, target, actor.request_id, before, after, at)

    def to_item(self) -> dict[str, Any]:
        at = self.at.astimezone(UTC)
        return {
            "pk": {"S": f"AUDIT#{self.tenant_id}"},
            "sk": {"S": f"{at.isoformat()}#{self.entry_id}"},
            "entry_id": {"S": self.entry_id},
            "tenant_id": {"S": self.tenant_id},
            "actor": {"S": scrub_text(self.actor)},
            "action": {"S": self.action},
            "target": {"S": scrub_text(self.target)},
            "at": {"S": at.isoformat()},
            "request_id": {"S": self.request_id or ""},
            "before": {"S": json.dumps(redact(self.before), default=str)},
            "after": {"S": json.dumps(redact(self.after), default=str)},
        }

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> AuditEntry:
        return cls(
            tenant_id=item["tenant_id"]["S"],
            actor=item["actor"]["S"],
            action=item["action"]["S"],
            target=item["target"]["S"],
            request_id=item.get("request_id", {}).get("S") or None,
            before=json.loads(item.get("before", {}).get("S", "null")),
            after=json.loads(item.get("after", {}).get("S", "null")),
            at=datetime.fromisoformat(item["at"]["S"]),
            entry_id=item["entry_id"]["S"],
        )

    def to_dict(self) -> dict[str, Any]:
        """The API shape of an entry."""
        return {
            "id": self.entry_id,
            "tenant_id": self.tenant_id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "request_id": self.request_id,
            "before": self.before,
            "after": self.after,
        }


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    next_cursor: str | None


class AuditLog(BillingTable):
    """Writes and reads audit entries. `put_item_request` lets a caller fold the entry into its own
    `TransactWriteItems`, so the mutation and its audit entry commit together."""

    def put_item_request(self, entry: AuditEntry) -> dict[str, Any]:
        # The condition makes an entry append-only: a replayed transaction cannot overwrite it.
        return {
            "Put": {
                "TableName": self.table,
                "Item": entry.to_item(),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def record(self, entry: AuditEntry) -> AuditEntry:
        self.client.put_item(TableName=self.table, Item=entry.to_item())
        return entry

    def list(self, tenant_id: str, limit: int = 50, newest_first: bool = True) -> list[AuditEntry]:
        return self.page(tenant_id, limit=limit, newest_first=newest_first).entries

    def page(
        self, tenant_id: str, *, limit: int = 50, cursor: str | None = None, newest_first: bool = True
    ) -> AuditPage:
        """One page of a tenant's entries, newest first by default; `next_cursor` is None on the last page."""
        pk = f"AUDIT#{tenant_id}"
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ScanIndexForward": not newest_first,
            "Limit": limit,
        }
        start = decode_cursor(cursor, expected={"pk": pk}, names={"pk", "sk"})
        if start:
            kwargs["ExclusiveStartKey"] = start
        response = self.client.query(**kwargs)
        entries = [AuditEntry.from_item(item) for item in response.get("Items", [])]
        return AuditPage(entries, encode_cursor(response.get("LastEvaluatedKey")))
