"""Use case: reserve an estimate. The estimate is taken through the consume path's conditional update
(`entitlements.take`) in the same transaction that records the reservation, so there is never a hold
without its reservation nor a reservation without its hold. One request when the first shard covers it.
Past an exhausted hard quota the tenant's live grants pay the rest (recorded on the reservation)."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from billing_platform.entitlements.entity_take import LevelRequest, LevelTaken, take_at_levels
from billing_platform.entitlements.models import ConsumeRequest
from billing_platform.entitlements.take import GrantsPaid, Shares, Taken, take
from billing_platform.errors import QuotaExceededError, UnprocessableError
from billing_platform.reservations.context import ReservationContext
from billing_platform.reservations.models import (
    MAX_TTL,
    MIN_TTL,
    Reservation,
    new_reservation_id,
    reservation_id_for,
)
from billing_platform.reservations.repository import reservation_from_item

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
    ctx.entitlements.refuse_under_cap(tenant_id, resource_type, "a reservation")
    reservation_id = reservation_id_for(tenant_id, idempotency_key) if idempotency_key else new_reservation_id()
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
        existing = reservation_from_item(taken.existing)
        if (existing.resource_type, existing.estimate) != (resource_type, estimate):
            raise UnprocessableError(
                f"idempotency key {idempotency_key!r} reserved {existing.estimate} {existing.resource_type}",
                code="idempotency_key_reused",
            )
        return existing, True
    assert taken.denial is not None
    raise QuotaExceededError(taken.denial)
