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
from typing import Any

from billing_platform.catalog.models import QuotaPolicy
from billing_platform.dynamodb import decimal_of, number_attr, string_attr
from billing_platform.entitlements.models import CounterState, QuotaCounter, TenantPlan
from billing_platform.instants import from_epoch, to_epoch

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


def plan_key(tenant_id: str) -> Item:
    return {"pk": string_attr(f"TENANT#{tenant_id}"), "sk": string_attr("PLAN")}


def profile_key(tenant_id: str) -> Item:
    return {"pk": string_attr(f"TENANT#{tenant_id}"), "sk": string_attr("PROFILE")}


def counter_pk(tenant_id: str, resource_type: str, shard: int, shards: int) -> str:
    base = f"QUOTA#{tenant_id}#{resource_type}"
    return base if shards <= 1 else f"{base}#{shard}"


def counter_key(tenant_id: str, resource_type: str, shard: int = 0, shards: int = 1) -> Item:
    return {"pk": string_attr(counter_pk(tenant_id, resource_type, shard, shards)), "sk": string_attr(COUNTER_SK)}


def consume_record_key(tenant_id: str, idempotency_key: str) -> Item:
    return {"pk": string_attr(f"CONSUME#{tenant_id}#{idempotency_key}"), "sk": string_attr("CONSUME")}


def counter_to_item(counter: QuotaCounter, now: datetime) -> Item:
    item: Item = {
        **counter_key(counter.tenant_id, counter.resource_type, counter.shard, counter.shards),
        "tenant_id": string_attr(counter.tenant_id),
        "resource_type": string_attr(counter.resource_type),
        "plan_id": string_attr(counter.plan_id),
        "policy": string_attr(counter.policy.value),
        "limit": number_attr(counter.limit),
        "used": number_attr(counter.used),
        "remaining": number_attr(counter.remaining),
        "period_start": number_attr(to_epoch(counter.period_start)),
        "period_end": number_attr(to_epoch(counter.period_end)),
        "state": string_attr(counter.state.value),
        "shard": number_attr(counter.shard),
        "shards": number_attr(counter.shards),
        "updated_at": string_attr(now.isoformat()),
    }
    if counter.total_limit is not None:
        item["total_limit"] = number_attr(counter.total_limit)
    if counter.current_shards is not None:
        item["current_shards"] = number_attr(counter.current_shards)
    if counter.windows:
        # The marker only: each window starts at the first take that finds it not started (levels.align_windows).
        item["windows"] = string_attr(counter.windows)
    return item


def counter_from_item(item: Item) -> QuotaCounter:
    return QuotaCounter(
        tenant_id=item["tenant_id"]["S"],
        resource_type=item["resource_type"]["S"],
        policy=QuotaPolicy(item["policy"]["S"]),
        limit=decimal_of(item.get("limit")),
        used=decimal_of(item.get("used")),
        remaining=decimal_of(item.get("remaining")),
        period_start=from_epoch(int(item["period_start"]["N"])),
        period_end=from_epoch(int(item["period_end"]["N"])),
        plan_id=item["plan_id"]["S"],
        state=CounterState(item["state"]["S"]),
        shard=int(item.get("shard", {"N": "0"})["N"]),
        shards=int(item.get("shards", {"N": "1"})["N"]),
        total_limit=decimal_of(item["total_limit"]) if "total_limit" in item else None,
        current_shards=int(item["current_shards"]["N"]) if "current_shards" in item else None,
        windows=item["windows"]["S"] if "windows" in item else "",
    )


def plan_to_item(plan: TenantPlan, now: datetime) -> Item:
    item: Item = {
        **plan_key(plan.tenant_id),
        "tenant_id": string_attr(plan.tenant_id),
        "plan_id": string_attr(plan.plan_id),
        "status": string_attr(plan.status),
        "period_start": number_attr(to_epoch(plan.period_start)),
        "period_end": number_attr(to_epoch(plan.period_end)),
        "features": {"M": {k: {"BOOL": v} for k, v in plan.features.items()}},
        "counter_shards": number_attr(plan.counter_shards),
        "updated_at": string_attr(now.isoformat()),
    }
    if plan.source_version is not None:
        item["source_version"] = number_attr(plan.source_version)
    if plan.suspended_reason:
        item["suspended_reason"] = string_attr(plan.suspended_reason)
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
