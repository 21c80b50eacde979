"""Billing-table stream records of quota counters and grants (real Lambda stream shapes, through
tests.factories.streams), and reading what reached the event bus (the local tap queue)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from billing_platform import resources
from tests.factories.streams import ACCOUNT, REGION, modify

BILLING_STREAM_ARN = (
    f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{resources.BILLING_TABLE.local_name}/stream/2026-11-27T00:00:00.000"
)
PERIOD_START = datetime(2026, 11, 1, tzinfo=UTC)
PERIOD_END = datetime(2026, 12, 1, tzinfo=UTC)


def counter_image(
    tenant_id: str,
    resource_type: str,
    used: Decimal | int,
    *,
    limit: Decimal | int = 1000,
    plan_id: str = "free",
    policy: str = "hard",
    shard: int = 0,
    shards: int = 1,
    total_limit: Decimal | int | None = None,
    period_start: datetime = PERIOD_START,
    period_end: datetime = PERIOD_END,
    state: str = "active",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(keys, image) of a counter item laid out as billing_platform.entitlements.repository writes it."""
    base = f"QUOTA#{tenant_id}#{resource_type}"
    keys = {"pk": base if shards <= 1 else f"{base}#{shard}", "sk": "COUNTER"}
    image: dict[str, Any] = {
        "tenant_id": tenant_id,
        "resource_type": resource_type,
        "plan_id": plan_id,
        "policy": policy,
        "limit": Decimal(limit),
        "used": Decimal(used),
        "remaining": Decimal(limit) - Decimal(used),
        "period_start": int(period_start.timestamp()),
        "period_end": int(period_end.timestamp()),
        "state": state,
        "shard": shard,
        "shards": shards,
    }
    if total_limit is not None or shards > 1:
        image["total_limit"] = Decimal(total_limit if total_limit is not None else limit)
    return keys, image


def counter_write(tenant_id: str, resource_type: str, before: int, after: int, **kwargs: Any) -> dict[str, Any]:
    """The stream record of a consume taking a counter's `used` from `before` to `after`."""
    keys, old = counter_image(tenant_id, resource_type, before, **kwargs)
    _, new = counter_image(tenant_id, resource_type, after, **kwargs)
    return modify(keys, old, new, stream_arn=BILLING_STREAM_ARN)


def grant_image(
    tenant_id: str,
    grant_id: str,
    *,
    resource_type: str = "api_calls",
    amount: int = 500,
    remaining: int = 500,
    state: str = "active",
    valid_until: datetime | None = None,
    priority: int = 50,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(keys, image) of a grant item as `grants.repository` lays it out (README "Grants and top-ups")."""
    keys = {"pk": f"GRANTS#{tenant_id}", "sk": f"GRANT#{resource_type}#{grant_id}"}
    image: dict[str, Any] = {
        "entity": "GRANT",
        "tenant_id": tenant_id,
        "resource_type": resource_type,
        "grant_id": grant_id,
        "amount": Decimal(amount),
        "remaining": Decimal(remaining),
        "used": Decimal(amount - remaining),
        "priority": priority,
        "state": state,
        "source": "operator",
        "source_id": grant_id,
        "created_at": (PERIOD_START + timedelta(days=2)).isoformat(),
        "created_by": "operator:test",
    }
    if valid_until is not None:
        epoch = int(valid_until.timestamp())
        image["valid_until"] = epoch
        bucket = int(hashlib.sha256(f"{tenant_id}#{grant_id}".encode()).hexdigest(), 16) % 16
        image["gsi1pk"] = f"GRANT_EXPIRY#{valid_until.astimezone(UTC).date().isoformat()}#{bucket}"
        image["gsi1sk"] = f"{epoch:010d}#{tenant_id}#{grant_id}"
    return keys, image


def grant_draw(tenant_id: str, grant_id: str, before: int, after: int, **kwargs: Any) -> dict[str, Any]:
    keys, old = grant_image(tenant_id, grant_id, remaining=before, **kwargs)
    _, new = grant_image(tenant_id, grant_id, remaining=after, **kwargs)
    return modify(keys, old, new, stream_arn=BILLING_STREAM_ARN)


def drain_bus(sqs: Any, tap_url: str, *, wait_seconds: int = 0) -> list[dict[str, Any]]:
    """Every EventBridge event copied to the tap queue since the last drain (and deletes them)."""
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=tap_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds).get(
            "Messages", []
        )
        if not got:
            return out
        for message in got:
            out.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=tap_url, ReceiptHandle=message["ReceiptHandle"])
        wait_seconds = 0
