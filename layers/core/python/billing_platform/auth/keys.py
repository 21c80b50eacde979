"""Tenant API keys: generation, hashing, storage and the operator service that creates, lists and
revokes them.

A key looks like `bk_test_3f9a0c1d2e4b5a69_<43 url-safe chars>`: the `bk_live_`/`bk_test_` prefix makes
a leaked key greppable (secret scanners, logs) and tells production keys from the rest; the 16 hex
characters after it are the key id, visible without the secret; the tail is `secrets.token_urlsafe(32)`,
256 bits from the OS CSPRNG.

Only `sha256(key)` is stored (item `APIKEY#<hash>`/`KEY`). A fast, unsalted hash is the right tool here:
slow salted hashes (bcrypt, scrypt, argon2) exist to make guessing low-entropy *passwords* expensive;
guessing a 256-bit random value is infeasible at any hash speed, so a slow hash would only add ~100 ms
to every authorizer call and make the key impossible to look up by its hash in one GetItem. A stolen
table therefore yields no usable key.

A second item `APIKEYID#<key id>`/`KEY` maps the key id to its hash so revocation by id is one
strongly consistent read (the `gsi1` listing index is eventually consistent).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from billing_platform import clients
from billing_platform.audit.log import AuditEntry, AuditLog, decode_cursor, encode_cursor
from billing_platform.errors import NotFoundError, ValidationError
from billing_platform.settings import Settings, get_settings

if TYPE_CHECKING:
    from billing_platform.auth.usage_plans import UsagePlanKeys

logger = Logger(child=True)

KEY_ID_PREFIX = "key_"
_KEY_PATTERN = re.compile(r"^bk_(live|test)_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
# last_used_at is refreshed at most this often per key, so the authorizer does not write on every call.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# A revoked key's item is kept (for listing and forensics) this long, then DynamoDB's TTL removes it.
REVOKED_RETENTION = timedelta(days=90)

KeyStatus = Literal["active", "revoked", "expired"]


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    # One fixed format (UTC, microseconds) so stored times compare correctly as strings.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def hash_key(presented: str) -> str:
    """SHA-256 hex digest of the full key string: the only form in which a key is stored."""
    return hashlib.sha256(presented.encode("utf-8")).hexdigest()


def key_id_of(presented: str) -> str | None:
    """The key id of a well-formed key (`key_<16 hex>`), or None when the string is not a platform key."""
    match = _KEY_PATTERN.fullmatch(presented)
    return f"{KEY_ID_PREFIX}{match.group(2)}" if match else None


def generate_key(*, live: bool) -> tuple[str, str]:
    """A new (key id, full key). The full key is shown once and never stored."""
    id_part = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return f"{KEY_ID_PREFIX}{id_part}", f"bk_{'live' if live else 'test'}_{id_part}_{secret}"


def usage_identifier_key(tenant_id: str) -> str:
    """The value the authorizer returns as `usageIdentifierKey`: it must equal the value of an API Gateway
    API key attached to the tenant's usage plan (apiKeySource AUTHORIZER). Deterministic per tenant, so
    throttling applies per tenant however many keys it mints; not a credential (clients cannot present
    it: with apiKeySource AUTHORIZER API Gateway ignores the x-api-key header)."""
    return "bk_usage_" + hashlib.sha256(f"usage-plan:{tenant_id}".encode()).hexdigest()[:40]


@dataclass(frozen=True)
class ApiKey:
    """A tenant API key's metadata. Holds no key material: neither the key nor its hash."""

    key_id: str
    tenant_id: str
    name: str
    created_at: datetime
    description: str | None = None
    display_prefix: str = ""
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    def status(self, now: datetime | None = None) -> KeyStatus:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or _now()):
            return "expired"
        return "active"

    def is_usable(self, now: datetime | None = None) -> bool:
        return self.status(now) == "active"

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        """The API and audit shape: metadata only."""
        return {
            "id": self.key_id,
            "tenant_id": self.tenant_id,
            "name": self.name,
            "description": self.description,
            "prefix": self.display_prefix,
            "status": self.status(now),
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


@dataclass(frozen=True)
class CreatedApiKey:
    """The result of a creation: the metadata and the full key, which exists only in this response."""

    key: ApiKey
    secret: str = field(repr=False)


@dataclass(frozen=True)
class ApiKeyPage:
    keys: list[ApiKey]
    next_cursor: str | None


def _opt_time(item: dict[str, Any], name: str) -> datetime | None:
    value = item.get(name, {}).get("S")
    return datetime.fromisoformat(value) if value else None


def _from_item(item: dict[str, Any]) -> ApiKey:
    return ApiKey(
        key_id=item["key_id"]["S"],
        tenant_id=item["tenant_id"]["S"],
        name=item["name"]["S"],
        description=item.get("description", {}).get("S"),
        display_prefix=item.get("display_prefix", {}).get("S", ""),
        created_at=datetime.fromisoformat(item["created_at"]["S"]),
        expires_at=_opt_time(item, "key_expires_at"),
        last_used_at=_opt_time(item, "last_used_at"),
        revoked_at=_opt_time(item, "revoked_at"),
    )


def _is_condition_failure(exc: ClientError) -> bool:
    code = exc.response.get("Error", {}).get("Code", "")
    if code == "ConditionalCheckFailedException":
        return True
    if code == "TransactionCanceledException":
        reasons = exc.response.get("CancellationReasons") or []
        if reasons:
            return any(r.get("Code") == "ConditionalCheckFailed" for r in reasons)
        return "ConditionalCheckFailed" in str(exc.response.get("Error", {}).get("Message", ""))
    return False


class ApiKeyRepository:
    """DynamoDB access for API keys (the billing table). The only code here that speaks boto3."""

    def __init__(self, settings: Settings | None = None, client: Any = None) -> None:
        self._settings = settings or get_settings()
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or clients.dynamodb()

    @property
    def table(self) -> str:
        return self._settings.billing_table_name

    def create(self, key: ApiKey, key_hash: str, audit_put: dict[str, Any]) -> None:
        """Key item, id -> hash pointer and audit entry in one transaction (all or nothing)."""
        item: dict[str, Any] = {
            "pk": {"S": f"APIKEY#{key_hash}"},
            "sk": {"S": "KEY"},
            "gsi1pk": {"S": f"TENANT#{key.tenant_id}#APIKEYS"},
            "gsi1sk": {"S": f"{_iso(key.created_at)}#{key.key_id}"},
            "key_id": {"S": key.key_id},
            "tenant_id": {"S": key.tenant_id},
            "name": {"S": key.name},
            "display_prefix": {"S": key.display_prefix},
            "created_at": {"S": _iso(key.created_at)},
        }
        if key.description:
            item["description"] = {"S": key.description}
        if key.expires_at:
            item["key_expires_at"] = {"S": _iso(key.expires_at)}
            # The table's TTL removes the item a while after expiry; the authorizer checks expiry itself.
            item["expires_at"] = {"N": str(int((key.expires_at + REVOKED_RETENTION).timestamp()))}
        pointer = {
            "pk": {"S": f"APIKEYID#{key.key_id}"},
            "sk": {"S": "KEY"},
            "tenant_id": {"S": key.tenant_id},
            "key_hash": {"S": key_hash},
        }
        self.client.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": self.table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}},
                {"Put": {"TableName": self.table, "Item": pointer, "ConditionExpression": "attribute_not_exists(pk)"}},
                audit_put,
            ]
        )

    def get_by_hash(self, key_hash: str) -> ApiKey | None:
        # Strongly consistent: a key revoked a moment ago must not pass.
        response = self.client.get_item(
            TableName=self.table,
            Key={"pk": {"S": f"APIKEY#{key_hash}"}, "sk": {"S": "KEY"}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return _from_item(item) if item else None

    def hash_for_key_id(self, key_id: str) -> tuple[str, str] | None:
        """(tenant id, key hash) of a key id, or None."""
        response = self.client.get_item(
            TableName=self.table,
            Key={"pk": {"S": f"APIKEYID#{key_id}"}, "sk": {"S": "KEY"}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return (item["tenant_id"]["S"], item["key_hash"]["S"]) if item else None

    def list_for_tenant(self, tenant_id: str, *, limit: int, cursor: str | None) -> ApiKeyPage:
        gsi1pk = f"TENANT#{tenant_id}#APIKEYS"
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :g",
            "ExpressionAttributeValues": {":g": {"S": gsi1pk}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        start = decode_cursor(cursor, expected={"gsi1pk": gsi1pk}, names={"pk", "sk", "gsi1pk", "gsi1sk"})
        if start:
            kwargs["ExclusiveStartKey"] = start
        response = self.client.query(**kwargs)
        keys = [_from_item(item) for item in response.get("Items", [])]
        return ApiKeyPage(keys, encode_cursor(response.get("LastEvaluatedKey")))

    def revoke(self, key_hash: str, tenant_id: str, revoked_at: datetime, audit_put: dict[str, Any]) -> bool:
        """Mark the key revoked with its audit entry, atomically. False if it was already revoked."""
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": {"pk": {"S": f"APIKEY#{key_hash}"}, "sk": {"S": "KEY"}},
                            "UpdateExpression": "SET revoked_at = :r, expires_at = :ttl",
                            "ConditionExpression": "tenant_id = :t AND attribute_not_exists(revoked_at)",
                            "ExpressionAttributeValues": {
                                ":r": {"S": _iso(revoked_at)},
                                ":t": {"S": tenant_id},
                                ":ttl": {"N": str(int((revoked_at + REVOKED_RETENTION).timestamp()))},
                            },
                        }
                    },
                    audit_put,
                ]
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def touch_last_used(self, key_hash: str, now: datetime) -> bool:
        """Set last_used_at = now unless it was set less than LAST_USED_RESOLUTION ago (conditional, so
        concurrent authorizer containers write at most once a minute). True if it wrote."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"pk": {"S": f"APIKEY#{key_hash}"}, "sk": {"S": "KEY"}},
                UpdateExpression="SET last_used_at = :now",
                ConditionExpression=(
                    "attribute_exists(pk) AND (attribute_not_exists(last_used_at) OR last_used_at < :cut)"
                ),
                ExpressionAttributeValues={
                    ":now": {"S": _iso(now)},
                    ":cut": {"S": _iso(now - LAST_USED_RESOLUTION)},
                },
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True


class ApiKeyService:
    """Creates, lists, revokes and authenticates tenant API keys. Every mutation commits together with
    its audit entry; neither the key nor its hash ever reaches the audit log or a log line."""

    def __init__(
        self,
        settings: Settings | None = None,
        repository: ApiKeyRepository | None = None,
        audit: AuditLog | None = None,
        usage_plan: UsagePlanKeys | None = None,
    ) -> None:
        self._settings = settings or get_settings()
        self._repository = repository or ApiKeyRepository(self._settings)
        self._audit = audit or AuditLog(self._settings)
        self._usage_plan = usage_plan
        if usage_plan is None and self._settings.usage_plan_id:
            from billing_platform.auth.usage_plans import UsagePlanKeys

            self._usage_plan = UsagePlanKeys(self._settings.usage_plan_id)

    @property
    def repository(self) -> ApiKeyRepository:
        return self._repository

    def create(
        self,
        tenant_id: str,
        *,
        name: str,
        actor: str,
        description: str | None = None,
        expires_at: datetime | None = None,
        request_id: str | None = None,
        now: datetime | None = None,
    ) -> CreatedApiKey:
        """A new active key for `tenant_id`; the full key is returned here once and never again."""
        moment = now or _now()
        if expires_at is not None:
            if expires_at.tzinfo is None:
                raise ValidationError("expires_at needs a timezone (use UTC, e.g. 2027-01-01T00:00:00Z)")
            if expires_at <= moment:
                raise ValidationError("expires_at must be in the future")
        key_id, secret = generate_key(live=self._settings.is_production)
        key = ApiKey(
            key_id=key_id,
            tenant_id=tenant_id,
            name=name,
            description=description,
            display_prefix=secret[: len("bk_test_") + 16],
            created_at=moment,
            expires_at=expires_at.astimezone(UTC) if expires_at else None,
        )
        entry = AuditEntry(
            tenant_id=tenant_id,
            actor=actor,
            action="api_key.created",
            target=key_id,
            request_id=request_id,
            before=None,
            after=key.to_dict(moment),
            at=moment,
        )
        if self._usage_plan is not None:
            # Before the key exists: a key must never work without its tenant's throttling.
            self._usage_plan.ensure_tenant(tenant_id)
        self._repository.create(key, hash_key(secret), self._audit.put_item_request(entry))
        return CreatedApiKey(key=key, secret=secret)

    def list(self, tenant_id: str, *, limit: int = 50, cursor: str | None = None) -> ApiKeyPage:
        return self._repository.list_for_tenant(tenant_id, limit=limit, cursor=cursor)

    def revoke(
        self, tenant_id: str, key_id: str, *, actor: str, request_id: str | None = None, now: datetime | None = None
    ) -> ApiKey:
        """Revoke a key of `tenant_id` (404 for an unknown key or another tenant's). Revoking twice is a
        no-op that returns the key as it is and writes no second audit entry."""
        moment = now or _now()
        found = self._repository.hash_for_key_id(key_id)
        if found is None or found[0] != tenant_id:
            raise NotFoundError("no such API key for this tenant", details={"key_id": key_id})
        key_hash = found[1]
        key = self._repository.get_by_hash(key_hash)
        if key is None:
            raise NotFoundError("no such API key for this tenant", details={"key_id": key_id})
        if key.revoked_at is not None:
            return key
        revoked = replace(key, revoked_at=moment)
        entry = AuditEntry(
            tenant_id=tenant_id,
            actor=actor,
            action="api_key.revoked",
            target=key_id,
            request_id=request_id,
            before=key.to_dict(moment),
            after=revoked.to_dict(moment),
            at=moment,
        )
        if not self._repository.revoke(key_hash, tenant_id, moment, self._audit.put_item_request(entry)):
            # Revoked concurrently by someone else: report the stored state.
            return self._repository.get_by_hash(key_hash) or revoked
        return revoked

    def authenticate(self, presented: str, *, now: datetime | None = None) -> ApiKey | None:
        """The active key `presented` stands for, or None (malformed, unknown, revoked, expired).
        Malformed strings cost no read. Refreshes last_used_at at most once a minute."""
        if key_id_of(presented) is None:
            return None
        moment = now or _now()
        key_hash = hash_key(presented)
        key = self._repository.get_by_hash(key_hash)
        if key is None or not key.is_usable(moment):
            return None
        if key.last_used_at is None or key.last_used_at < moment - LAST_USED_RESOLUTION:
            try:
                self._repository.touch_last_used(key_hash, moment)
            except ClientError as exc:
                # Bookkeeping must never turn a valid key away.
                logger.warning(
                    "last_used_at not updated",
                    extra={"key_id": key.key_id, "error": exc.response.get("Error", {}).get("Code")},
                )
        return key
