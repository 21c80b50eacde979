"""A take of quota committed together with a companion write (the reservation item), in one transaction.

The counter update is the consume hot path's own (`EntitlementRepository._consume_expression`: the same
policies, the same `remaining >= :q` for hard quotas, the same period and state guard); when its
condition fails, the entitlement service's slow path decides (provision, roll the period over, follow a
layout change, deny with exact numbers). Sharded quotas: one random shard first; when it cannot cover the
quantity, all shards are read and the take goes to one that can, or is spread over several, still in one
transaction with the companion. One request when the first shard covers it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from billing_platform.catalog.models import QuotaPolicy
from billing_platform.entitlements.models import (
    CounterState,
    DenyReason,
    EntitlementCheck,
    QuotaCounter,
    check_from_counter,
    combine_shards,
)
from billing_platform.entitlements.repository import EntitlementRepository, counter_from_item, counter_key
from billing_platform.entitlements.service import MAX_ROUNDS, EntitlementService
from billing_platform.errors import RateLimitedError

Item = dict[str, Any]
Shares = tuple[tuple[int, Decimal], ...]
# Builds the companion's transaction item for a take at `now` from these shards of this layout.
Companion = Callable[[datetime, Shares, int], dict[str, Any]]


@dataclass(frozen=True)
class Taken:
    """`granted`: the quantity was taken and the companion written. Otherwise `existing` is the item the
    companion's condition found (a retried reserve), or `denial` is the final refusal."""

    granted: bool
    shares: Shares = ()
    layout: int = 1
    taken_at: datetime | None = None
    denial: EntitlementCheck | None = None
    existing: Item | None = None
    resets_at: datetime | None = None


def take(
    service: EntitlementService, tenant_id: str, resource_type: str, quantity: Decimal, companion: Companion
) -> Taken:
    """Take `quantity` (validated by the caller) and write the companion, all or nothing."""
    repo: EntitlementRepository = service._repo
    enforce = service.enforcing
    shards = service._layouts.get((tenant_id, resource_type)) or 1
    for _round in range(MAX_ROUNDS):
        now = service._clock()
        shard = service._rng.randrange(shards) if shards > 1 else 0
        outcome = _commit(repo, tenant_id, resource_type, ((shard, quantity),), shards, now, enforce, companion)
        if isinstance(outcome, Taken):
            return outcome
        if outcome is _CONFLICT:
            continue
        old = outcome if isinstance(outcome, dict) else None
        counter = counter_from_item(old) if old is not None else None
        if shards > 1 and counter is not None and counter.state is CounterState.ACTIVE and counter.period_end > now:
            # The chosen shard is short: look at all of them (the service's own fallback would consume
            # without the companion).
            spread = _spread(service, tenant_id, resource_type, quantity, shards, enforce, companion)
            if spread is not None:
                return spread
            continue
        decided = service._slow_path(tenant_id, resource_type, quantity, shards, old, now, enforce, None)
        if isinstance(decided, EntitlementCheck):
            return Taken(granted=False, denial=decided)
        shards = decided
    raise RateLimitedError("the quota is under heavy contention; retry shortly")


class _Conflict:
    """Another transaction held one of the items: try again."""


_CONFLICT = _Conflict()


def _commit(
    repo: EntitlementRepository,
    tenant_id: str,
    resource_type: str,
    shares: Shares,
    layout: int,
    now: datetime,
    enforce: bool,
    companion: Companion,
) -> Taken | Item | _Conflict | None:
    """One transaction: every share's conditional take, then the companion. Returns the Taken outcome, the
    counter item whose condition failed (None: no counter yet), or _CONFLICT."""
    items: list[dict[str, Any]] = []
    for shard, part in shares:
        items.append(
            {
                "Update": {
                    "TableName": repo._table,
                    "Key": counter_key(tenant_id, resource_type, shard, layout),
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    **repo._consume_expression(part, now, enforce=enforce),
                }
            }
        )
    items.append(companion(now, shares, layout))
    try:
        repo.client.transact_write_items(TransactItems=items)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") != "TransactionCanceledException":
            raise
        found_reasons: Any = err.response.get("CancellationReasons") or []
        reasons: list[dict[str, Any]] = list(found_reasons)
        codes = [r.get("Code") for r in reasons]
        if len(reasons) == len(items) and codes[-1] == "ConditionalCheckFailed":
            return Taken(granted=False, existing=reasons[-1].get("Item"))
        for reason in reasons[:-1]:
            if reason.get("Code") == "ConditionalCheckFailed":
                found: Item | None = reason.get("Item")
                return found
        return _CONFLICT
    return Taken(granted=True, shares=shares, layout=layout, taken_at=now)


def _spread(
    service: EntitlementService,
    tenant_id: str,
    resource_type: str,
    quantity: Decimal,
    shards: int,
    enforce: bool,
    companion: Companion,
) -> Taken | None:
    """Read every shard; take from one that covers `quantity`, else spread it over several; deny only when
    all of them together fall short. None: the layout or a period changed meanwhile (start over)."""
    repo: EntitlementRepository = service._repo
    keys = [counter_key(tenant_id, resource_type, i, shards) for i in range(shards)]
    for _round in range(MAX_ROUNDS):
        now = service._clock()
        counters = sorted(repo.get_counters(keys), key=lambda c: c.shard)
        if len(counters) != shards or any(c.state is not CounterState.ACTIVE or c.period_end <= now for c in counters):
            return None
        total = combine_shards(counters)
        if enforce and total.policy is QuotaPolicy.HARD and total.remaining < quantity:
            return Taken(
                granted=False, denial=check_from_counter(total, quantity, allowed=False, reason=DenyReason.EXHAUSTED)
            )
        outcome = _commit(
            repo,
            tenant_id,
            resource_type,
            _plan_shares(counters, quantity, total, enforce),
            shards,
            now,
            enforce,
            companion,
        )
        if isinstance(outcome, Taken):
            return outcome
        time.sleep(service._rng.uniform(0, 0.005))  # a racing take changed a shard: read again
    raise RateLimitedError("the quota is under heavy contention; retry shortly")


def _plan_shares(counters: list[QuotaCounter], quantity: Decimal, total: QuotaCounter, enforce: bool) -> Shares:
    richest = max(counters, key=lambda c: c.remaining)
    if richest.remaining >= quantity or total.policy is not QuotaPolicy.HARD or not enforce:
        return ((richest.shard, quantity),)
    shares: list[tuple[int, Decimal]] = []
    left = quantity
    for counter in sorted(counters, key=lambda c: c.remaining, reverse=True):
        part = min(left, counter.remaining)
        if part > 0:
            shares.append((counter.shard, part))
            left -= part
        if left <= 0:
            break
    return tuple(shares)
