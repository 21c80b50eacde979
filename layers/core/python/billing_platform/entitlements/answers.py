"""How a counter (or its absence) becomes an `EntitlementCheck`: granted, not in plan, suspended."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from billing_platform.catalog.models import QuotaPolicy
from billing_platform.entitlements.models import DenyReason, EntitlementCheck, QuotaCounter, check_from_counter
from billing_platform.quantities import ZERO


def granted(
    counter: QuotaCounter,
    quantity: Decimal,
    enforce: bool,
    shards: int,
    shards_used: tuple[tuple[int, Decimal], ...],
    idempotency_key: str | None,
) -> EntitlementCheck:
    """The answer to a granted take, from the one counter the take's update returned."""
    view, approximate = counter, False
    if shards > 1:
        # One shard seen: the totals are an estimate (that shard's state times the shard count).
        view = replace(counter, used=counter.used * shards, remaining=counter.remaining * shards)
        if counter.total_limit is not None and counter.policy is not QuotaPolicy.UNLIMITED:
            # Not clamped at zero: a soft quota's overage shows as negative remaining.
            remaining = min(counter.total_limit, counter.remaining * shards)
            view = replace(view, remaining=remaining, used=counter.total_limit - remaining)
        approximate = True
    return check_from_counter(
        view,
        quantity,
        allowed=True,
        enforced=enforce,
        approximate=approximate,
        idempotency_key=idempotency_key,
        shards_used=shards_used,
    )


def not_in_plan(tenant_id: str, resource_type: str, quantity: Decimal, enforce: bool) -> EntitlementCheck:
    """The resource is not in the tenant's plan: denied when enforcing, allowed (unrecorded) when not."""
    return EntitlementCheck(
        tenant_id=tenant_id,
        resource_type=resource_type,
        quantity=quantity,
        allowed=not enforce,
        policy=None,
        limit=ZERO,
        used=ZERO,
        remaining=ZERO,
        resets_at=None,
        reason=None if not enforce else DenyReason.NOT_IN_PLAN,
        enforced=enforce,
    )


def suspended_answer(counter: QuotaCounter, quantity: Decimal, enforce: bool, shards: int) -> EntitlementCheck:
    """The quota is suspended (past due beyond grace, unpaid)."""
    # With enforcement off the request is allowed; a suspended counter cannot record it.
    return check_from_counter(
        counter,
        quantity,
        allowed=not enforce,
        enforced=enforce,
        reason=DenyReason.SUSPENDED,
        approximate=shards > 1,
    )
