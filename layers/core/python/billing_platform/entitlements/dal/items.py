"""Keys and item codecs of the entitlement items (billing table, single-table design).

- `TENANT#<tid>` / `PLAN`: plan id, status, features, period, counter layout, source version.
- `QUOTA#<tid>#<resource>` / `COUNTER` (one shard) or `QUOTA#<tid>#<resource>#<i>` / `COUNTER`
  (sharded): its own partition per counter, so a tenant's counters never share a partition key.
- `CONSUME#<tid>#<key>` / `CONSUME`: an idempotent consume's answer (TTL `expires_at`).

The unsharded key is the quota's directory: once provisioned it always exists, as the counter itself
(one shard) or as a RETIRED marker whose `current_shards` names the layout in force (0: not in plan).
Numbers go to DynamoDB as Decimal strings, never floats.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from billing_platform.catalog.models import QuotaPolicy
from billing_platform.entitlements.models import (
    ZERO,
    CounterState,
    QuotaCounter,
    TenantPlan,
    from_epoch,
    to_epoch,
)

Item = dict[str, Any]
COUNTER_SK = "COUNTER"
CONSUME_RECORD_DAYS = 40  # kept past the period so a late retry still finds its answer

# Every attribute name goes through a placeholder: several (state, limit, used) are reserved words.
NAMES = {
    "#rem": "remaining",
    "#used": "used",
    "#lim": "limit",
    "#pe": "period_end",
    "#ps": "period_start",
    "#st": "state",
    "#pol": "policy",
}


def _n(value: Decimal | int) -> dict[str, str]:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("DynamoDB numbers must be finite")
        return {"N": format(value, "f")}
    return {"N": str(value)}


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _dec(attr: dict[str, str] | None) -> Decimal:
    return Decimal(attr["N"]) if attr else ZERO


def plan_key(tenant_id: str) -> Item:
    return {"pk": _s(f"TENANT#{tenant_id}"), "sk": _s("PLAN")}


def profile_key(tenant_id: str) -> Item:
    return {"pk": _s(f"TENANT#{tenant_id}"), "sk": _s("PROFILE")}


def counter_pk(tenant_id: str, resource_type: str, shard: int, shards: int) -> str:
    base = f"QUOTA#{tenant_id}#{resource_type}"
    return base if shards <= 1 else f"{base}#{shard}"


def counter_key(tenant_id: str, resource_type: str, shard: int = 0, shards: int = 1) -> Item:
    return {"pk": _s(counter_pk(tenant_id, resource_type, shard, shards)), "sk": _s(COUNTER_SK)}


def consume_record_key(tenant_id: str, idempotency_key: str) -> Item:
    return {"pk": _s(f"CONSUME#{tenant_id}#{idempotency_key}"), "sk": _s("CONSUME")}


def counter_to_item(counter: QuotaCounter, now: datetime) -> Item:
    item: Item = {
        **counter_key(counter.tenant_id, counter.resource_type, counter.shard, counter.shards),
        "tenant_id": _s(counter.tenant_id),
        "resource_type": _s(counter.resource_type),
        "plan_id": _s(counter.plan_id),
        "policy": _s(counter.policy.value),
        "limit": _n(counter.limit),
        "used": _n(counter.used),
        "remaining": _n(counter.remaining),
        "period_start": _n(to_epoch(counter.period_start)),
        "period_end": _n(to_epoch(counter.period_end)),
        "state": _s(counter.state.value),
        "shard": _n(counter.shard),
        "shards": _n(counter.shards),
        "updated_at": _s(now.isoformat()),
    }
    if counter.total_limit is not None:
        item["total_limit"] = _n(counter.total_limit)
    if counter.current_shards is not None:
        item["current_shards"] = _n(counter.current_shards)
    return item


def counter_from_item(item: Item) -> QuotaCounter:
    return QuotaCounter(
        tenant_id=item["tenant_id"]["S"],
        resource_type=item["resource_type"]["S"],
        policy=QuotaPolicy(item["policy"]["S"]),
        limit=_dec(item.get("limit")),
        used=_dec(item.get("used")),
        remaining=_dec(item.get("remaining")),
        period_start=from_epoch(int(item["period_start"]["N"])),
        period_end=from_epoch(int(item["period_end"]["N"])),
        plan_id=item["plan_id"]["S"],
        state=CounterState(item["state"]["S"]),
        shard=int(item.get("shard", {"N": "0"})["N"]),
        shards=int(item.get("shards", {"N": "1"})["N"]),
        total_limit=_dec(item["total_limit"]) if "total_limit" in item else None,
        current_shards=int(item["current_shards"]["N"]) if "current_shards" in item else None,
    )


def plan_to_item(plan: TenantPlan, now: datetime) -> Item:
    item: Item = {
        **plan_key(plan.tenant_id),
        "tenant_id": _s(plan.tenant_id),
        "plan_id": _s(plan.plan_id),
        "status": _s(plan.status),
        "period_start": _n(to_epoch(plan.period_start)),
        "period_end": _n(to_epoch(plan.period_end)),
        "features": {"M": {k: {"BOOL": v} for k, v in plan.features.items()}},
        "counter_shards": _n(plan.counter_shards),
        "updated_at": _s(now.isoformat()),
    }
    if plan.source_version is not None:
        item["source_version"] = _n(plan.source_version)
    if plan.suspended_reason:
        item["suspended_reason"] = _s(plan.suspended_reason)
    return item


def plan_from_item(item: Item) -> TenantPlan:
    return TenantPlan(
        tenant_id=item["tenant_id"]["S"],
        plan_id=item["plan_id"]["S"],
        status=item["status"]["S"],
        period_start=from_epoch(int(item["period_start"]["N"])),
        period_end=from_epoch(int(item["period_end"]["N"])),
        features={k: bool(v["BOOL"]) for k, v in item.get("features", {}).get("M", {}).items()},
        counter_shards=int(item.get("counter_shards", {"N": "1"})["N"]),
        source_version=int(item["source_version"]["N"]) if "source_version" in item else None,
        suspended_reason=item["suspended_reason"]["S"] if "suspended_reason" in item else None,
    )
