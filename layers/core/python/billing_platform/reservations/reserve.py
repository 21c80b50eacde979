"""Use case: reserve an estimate. The estimate is taken through the consume path's conditional update
(`entitlements.take`) in the same transaction that records the reservation, so there is never a hold
without its reservation nor a reservation without its hold. One request when the first shard covers it.
Past an exhausted hard quota the tenant's live grants pay the rest (recorded on the reservation)."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from billing_platform.entitlements.context import MAX_ROUNDS
from billing_platform.entitlements.entity_take import LevelRequest, LevelTaken, take_at_levels
from billing_platform.entitlements.models import ConsumeRequest
from billing_platform.entitlements.take import GrantsPaid, Shares, Taken, take
from billing_platform.errors import QuotaExceededError, RateLimitedError, SpendCapReachedError, UnprocessableError
from billing_platform.quantities import ZERO
from billing_platform.reservations.context import ReservationContext
from billing_platform.reservations.models import (
    MAX_TTL,
    MIN_TTL,
    Reservation,
    new_reservation_id,
    reservation_id_for,
)
from billing_platform.reservations.repository import reservation_from_item

if TYPE_CHECKING:
    from billing_platform.entitlements.capped import SpendLeg

logger = logging.getLogger(__name__)


def reserve(
    ctx: ReservationContext,
    tenant_id: str,
    resource_type: str,
    estimate: Decimal,
    ttl: timedelta,
    *,
    idempotency_key: str | None = None,
    entity_id: str | None = None,
) -> tuple[Reservation, bool]:
    """Hold `estimate` until settled, cancelled or `ttl` has passed. Returns (reservation, replayed).
    Raises QuotaExceededError (402) when the quota cannot cover it: nothing is then held or recorded.
    With `entity_id` the estimate is held at every limited level of that entity too (`entity_take`)."""
    ctx.entitlements.validate(resource_type, estimate)
    if not MIN_TTL <= ttl <= MAX_TTL:
        raise UnprocessableError(
            f"ttl must be between {int(MIN_TTL.total_seconds())} and {int(MAX_TTL.total_seconds())} seconds",
            code="invalid_ttl",
        )
    reservation_id = reservation_id_for(tenant_id, idempotency_key) if idempotency_key else new_reservation_id()
    leg = ctx.entitlements.spend_caps.leg(tenant_id, resource_type, entity_id=entity_id)
    if leg is not None:
        wanted = ConsumeRequest(tenant_id, resource_type, estimate, idempotency_key, entity_id)
        return _reserve_capped(ctx, leg, wanted, ttl, reservation_id)
    built: list[Reservation] = []

    def companion(now: datetime, shares: Shares, layout: int, grants: GrantsPaid) -> dict[str, Any]:
        held = Reservation(
            tenant_id=tenant_id,
            reservation_id=reservation_id,
            resource_type=resource_type,
            estimate=estimate,
            reserved_at=now.replace(microsecond=0),  # whole seconds, as stored
            due_at=(now + ttl).replace(microsecond=0),
            shards=shares,
            layout=layout,
            grants=grants,
        )
        built[:] = [held]
        return ctx.repo.hold_put(held)

    def companions(
        now: datetime, shares: Shares, layout: int, entities: tuple[str, ...], grants: GrantsPaid
    ) -> list[dict[str, Any]]:
        companion(now, shares, layout, grants)
        built[:] = [replace(built[0], entity_id=entity_id, entities=entities)]
        return [ctx.repo.hold_put(built[0])]

    taken: Taken | LevelTaken
    if entity_id is not None:
        request = LevelRequest(tenant_id, resource_type, estimate, entity_id)
        taken = take_at_levels(ctx.entitlements.context, request, companions)
    else:
        taken = take(ctx.entitlements.context, ConsumeRequest(tenant_id, resource_type, estimate), companion)
    if taken.granted:
        logger.info("quota reserved", extra={"tenant_id": tenant_id, "reservation_id": reservation_id})
        return built[0], False
    if taken.existing is not None:
        return _replayed(taken.existing, resource_type, estimate, idempotency_key), True
    assert taken.denial is not None
    raise QuotaExceededError(taken.denial)


def _reserve_capped(
    ctx: ReservationContext,
    leg: SpendLeg,
    request: ConsumeRequest,
    ttl: timedelta,
    reservation_id: str,
) -> tuple[Reservation, bool]:
    """The reserve of a tenant with a spend cap: the estimate's cost is held on the period's spend in the
    same transaction as the hold (what the quota counts, not what grants paid: grants are prepaid), so a
    hard cap refuses the reservation that would pass it (`SpendCapReachedError`) and nothing is held. For an
    entity, at every level of its chain, and on the entity's spend line (held to its cap)."""
    tenant_id, resource_type, estimate, idempotency_key = (
        request.tenant_id,
        request.resource_type,
        request.quantity,
        request.idempotency_key,
    )
    entity_id = request.entity_id
    built: list[Reservation] = []

    def companion(now: datetime, shares: Shares, layout: int, grants: GrantsPaid) -> list[dict[str, Any]]:
        held = Reservation(
            tenant_id=tenant_id,
            reservation_id=reservation_id,
            resource_type=resource_type,
            estimate=estimate,
            reserved_at=now.replace(microsecond=0),
            due_at=(now + ttl).replace(microsecond=0),
            shards=shares,
            layout=layout,
            grants=grants,
        )
        built[:] = [held]
        spend = leg.item(sum((part for _shard, part in shares), ZERO))
        sent[:] = [spend is not None]
        return [ctx.repo.hold_put(held)] + ([spend] if spend is not None else [])

    def companions(
        now: datetime, shares: Shares, layout: int, entities: tuple[str, ...], grants: GrantsPaid
    ) -> list[dict[str, Any]]:
        items = companion(now, shares, layout, grants)
        built[:] = [replace(built[0], entity_id=entity_id, entities=entities)]
        return [ctx.repo.hold_put(built[0]), *items[1:]]

    sent: list[bool] = [False]  # whether the last transaction carried a spend item (after the hold)
    for _round in range(MAX_ROUNDS):
        taken: Taken | LevelTaken
        if entity_id is not None:
            levels = LevelRequest(tenant_id, resource_type, estimate, entity_id)
            taken = take_at_levels(ctx.entitlements.context, levels, companions)
            spend_refused = sent[0] and taken.existing_index == -1
        else:
            taken = take(ctx.entitlements.context, ConsumeRequest(tenant_id, resource_type, estimate), companion)
            spend_refused = sent[0] and taken.companion_index == 1
        if taken.granted:
            leg.committed()
            logger.info("quota reserved", extra={"tenant_id": tenant_id, "reservation_id": reservation_id})
            return built[0], False
        if taken.denial is not None:
            raise QuotaExceededError(taken.denial)
        if not spend_refused and taken.existing is not None:
            return _replayed(taken.existing, resource_type, estimate, idempotency_key), True
        # The spend item was not where the hold was priced: price it at its real state.
        refused = leg.reprice(taken.existing, estimate)
        if refused is not None:
            raise SpendCapReachedError(refused)
    raise RateLimitedError("the spend is under heavy contention; retry shortly")


def _replayed(item: dict[str, Any], resource_type: str, estimate: Decimal, idempotency_key: str | None) -> Reservation:
    existing = reservation_from_item(item)
    if (existing.resource_type, existing.estimate) != (resource_type, estimate):
        raise UnprocessableError(
            f"idempotency key {idempotency_key!r} reserved {existing.estimate} {existing.resource_type}",
            code="idempotency_key_reused",
        )
    return existing
