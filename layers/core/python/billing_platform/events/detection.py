"""What a billing-table stream record means for events: pure functions over the record's images.

Quota counters (`QUOTA#<tenant>#<resource>[#<shard>]` / `COUNTER`, billing_platform.entitlements.repository):
- one shard: the record carries the whole quota's `used` before and after the write, so a threshold t is
  crossed by exactly the write with `old_used < t·limit <= new_used` (same period and limit; after a
  rollover, a plan change or a layout switch the old image counts as 0 and the ledger dedupes).
- sharded: a shard's record only knows its own share. A write that raised a shard's `used` makes the
  quota a *candidate*; the caller reads every shard (off the hot path) and claims each threshold the total
  has reached: a level test, exact because the ledger, not the test, makes each event happen once.

Spend items (`SPEND#<tenant>` / `PERIOD#<end>`, billing_platform.spend.repository): a write taking `spend`
from below t·cap to at least it (the cap and its thresholds are on the item) crosses t once per write; the
ledger dedupes a stream record delivered again.

Grants (`GRANTS#<tenant>` / `GRANT#<resource>#<id>`, entity GRANT): a MODIFY taking `remaining` from > 0 to 0
while `state = active` is the grant used up (remaining never increases, so this happens once per grant).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aws_lambda_powertools.shared.dynamodb_deserializer import TypeDeserializer

from billing_platform.events.models import GrantSnapshot, SpendCrossing
from billing_platform.quantities import ZERO

_deserializer = TypeDeserializer()
COUNTER_SK = "COUNTER"
GRANT_ENTITY = "GRANT"


def plain_image(image: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stream image (DynamoDB JSON) as Python values (numbers as Decimal)."""
    if not image:
        return None
    return {name: _deserializer.deserialize(value) for name, value in image.items()}


def _when(epoch: Any) -> datetime:
    return datetime.fromtimestamp(int(epoch), UTC)


@dataclass(frozen=True)
class CounterChange:
    """One counter item's write: the quota it belongs to and its `used` before and after."""

    tenant_id: str
    resource_type: str
    shard: int
    shards: int
    limit: Decimal  # the whole quota's limit
    old_used: Decimal  # 0 when the old image is of another period, limit or layout
    new_used: Decimal
    period_start: datetime
    period_end: datetime
    plan_id: str
    policy: str

    @property
    def sharded(self) -> bool:
        return self.shards > 1

    @property
    def quota_key(self) -> tuple[str, str, int, Decimal, int]:
        """Writes with the same key are of the same quota (tenant, resource, period, limit, layout)."""
        return (self.tenant_id, self.resource_type, int(self.period_start.timestamp()), self.limit, self.shards)


def counter_change(
    keys: dict[str, Any], old: dict[str, Any] | None, new: dict[str, Any] | None
) -> CounterChange | None:
    """The counter write of a stream record, or None when it cannot cross a threshold (not a counter,
    removed, retired, unlimited, no limit, or its `used` did not go up)."""
    if not new or not str(keys.get("pk", "")).startswith("QUOTA#") or keys.get("sk") != COUNTER_SK:
        return None
    if new.get("state") == "retired" or new.get("policy") == "unlimited":
        return None
    shards = int(new.get("shards", 1))
    limit = new.get("total_limit") if shards > 1 else new.get("total_limit", new.get("limit"))
    if limit is None or Decimal(limit) <= 0:
        return None
    new_used = Decimal(new.get("used", ZERO))
    old_used = ZERO
    if old is not None and _same_quota(old, new):
        old_used = Decimal(old.get("used", ZERO))
    if new_used <= old_used:
        return None  # a release, a rollover, a state change: nothing was taken
    return CounterChange(
        tenant_id=str(new["tenant_id"]),
        resource_type=str(new["resource_type"]),
        shard=int(new.get("shard", 0)),
        shards=shards,
        limit=Decimal(limit),
        old_used=old_used,
        new_used=new_used,
        period_start=_when(new["period_start"]),
        period_end=_when(new["period_end"]),
        plan_id=str(new.get("plan_id", "")),
        policy=str(new.get("policy", "")),
    )


def _same_quota(old: dict[str, Any], new: dict[str, Any]) -> bool:
    fields = ("period_start", "limit", "total_limit", "shards")
    return all(old.get(name) == new.get(name) for name in fields) and old.get("state") != "retired"


def crossed(percentages: tuple[Decimal, ...], limit: Decimal, before: Decimal, after: Decimal) -> list[Decimal]:
    """The thresholds (percent of `limit`) with `before < level <= after`."""
    return [p for p in percentages if before < limit * p / 100 <= after]


def reached(percentages: tuple[Decimal, ...], limit: Decimal, used: Decimal) -> list[Decimal]:
    """The thresholds `used` has reached: the level test for sharded quotas."""
    return [p for p in percentages if limit * p / 100 <= used]


def grant_snapshot(image: dict[str, Any]) -> GrantSnapshot:
    """A grant item (stream image or GetItem, as Python values) as the event fields."""
    created = image.get("created_at")
    valid_until = image.get("valid_until")
    return GrantSnapshot(
        tenant_id=str(image["tenant_id"]),
        resource_type=str(image["resource_type"]),
        grant_id=str(image["grant_id"]),
        amount=Decimal(image.get("amount", ZERO)),
        remaining=Decimal(image.get("remaining", ZERO)),
        used=Decimal(image.get("used", ZERO)),
        priority=int(image.get("priority", 50)),
        state=str(image.get("state", "active")),
        source=str(image.get("source", "")),
        created_at=datetime.fromisoformat(str(created)).astimezone(UTC) if created else None,
        valid_until=_when(valid_until) if valid_until is not None else None,
    )


def grant_depletion(
    keys: dict[str, Any], old: dict[str, Any] | None, new: dict[str, Any] | None
) -> GrantSnapshot | None:
    """The grant a stream record used up, or None."""
    if not old or not new or new.get("entity") != GRANT_ENTITY:
        return None
    if not str(keys.get("pk", "")).startswith("GRANTS#"):
        return None
    if new.get("state") != "active":
        return None  # a void sets remaining to 0 too: not a depletion
    if Decimal(old.get("remaining", ZERO)) > 0 and Decimal(new.get("remaining", ZERO)) == 0:
        return grant_snapshot(new)
    return None


def spend_crossings(
    keys: dict[str, Any], old: dict[str, Any] | None, new: dict[str, Any] | None, at: datetime
) -> list[SpendCrossing]:
    """The thresholds of the cap a spend item's write crossed (none for any other item)."""
    pk, sk = str(keys.get("pk", "")), str(keys.get("sk", ""))
    if not (pk.startswith("SPEND#") and sk.startswith("PERIOD#")) or not new or "cap" not in new:
        return []
    cap = Decimal(new["cap"])
    before = Decimal(old.get("spend", ZERO)) if old and old.get("cap") == new["cap"] else ZERO
    after = Decimal(new.get("spend", ZERO))
    percents = [Decimal(t) for t in str(new.get("thresholds", "")).split(",") if t]
    return [
        SpendCrossing(
            tenant_id=pk.removeprefix("SPEND#"),
            percent=p,
            spend=after,
            cap=cap,
            currency=str(new.get("currency", "")),
            period_end=_when(sk.removeprefix("PERIOD#")),
            occurred_at=at,
        )
        for p in percents
        if before < cap * p / 100 <= after
    ]
