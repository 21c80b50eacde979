"""`ReservationService`: the facade the HTTP API, the sweep and the library call. Thread-safe; one per
container. The use cases live in `reserve`, `resolve` and `sweep`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

from billing_platform.dynamodb import utc_now
from billing_platform.entitlements.service import EntitlementService
from billing_platform.errors import NotFoundError
from billing_platform.reservations import resolve
from billing_platform.reservations.context import ReservationContext
from billing_platform.reservations.meter import Meter, QueueMeter
from billing_platform.reservations.models import DEFAULT_TTL, Reservation
from billing_platform.reservations.repository import ReservationRepository
from billing_platform.reservations.reserve import reserve
from billing_platform.reservations.sweep import SweepReport, sweep_due
from billing_platform.settings import Settings, get_settings

# The open reservations one read lists at most (a portal shows them; a tenant with more sees the first ones).
MAX_OPEN_LISTED = 100


class ReservationService:
    """Reserve, settle, cancel, read and expire reservations.

    Promises: a reserve takes its estimate exactly as a consume would (402 when it cannot be covered, and
    then nothing is held); each reservation is resolved once (settled, cancelled or expired) and given back
    at most once, only into the period it was taken from; a retried settle or cancel answers the same and
    changes nothing; the usage metered for a settle is its charged amount, under a record id derived from
    the reservation."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        entitlements: EntitlementService | None = None,
        repository: ReservationRepository | None = None,
        meter: Meter | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        settings = settings or get_settings()
        service = entitlements or EntitlementService(settings, clock=clock or utc_now)
        self._ctx = ReservationContext(
            entitlements=service,
            repo=repository or ReservationRepository(settings),
            meter=meter or QueueMeter(settings, service.catalog),
            clock=clock or service.context.clock,
        )

    @property
    def entitlements(self) -> EntitlementService:
        return self._ctx.entitlements

    def reserve(
        self,
        tenant_id: str,
        resource_type: str,
        estimate: Decimal,
        *,
        ttl: timedelta = DEFAULT_TTL,
        idempotency_key: str | None = None,
        entity_id: str | None = None,
    ) -> tuple[Reservation, bool]:
        """Hold `estimate` (at every limited level of `entity_id` too); (reservation, replayed).
        QuotaExceededError (402, or 429 for a window) when it cannot be covered."""
        return reserve(
            self._ctx, tenant_id, resource_type, estimate, ttl, idempotency_key=idempotency_key, entity_id=entity_id
        )

    def settle(self, tenant_id: str, reservation_id: str, actual: Decimal) -> tuple[Reservation, bool]:
        """Charge `actual` (give back the rest, or take the extra); (reservation, replayed)."""
        return resolve.settle(self._ctx, tenant_id, reservation_id, actual)

    def cancel(self, tenant_id: str, reservation_id: str) -> tuple[Reservation, bool]:
        """Give the whole estimate back; (reservation, replayed)."""
        return resolve.cancel(self._ctx, tenant_id, reservation_id)

    def get(self, tenant_id: str, reservation_id: str) -> Reservation:
        """The reservation as stored; NotFoundError (404) for an unknown id or another tenant's."""
        found = self._ctx.repo.get(tenant_id, reservation_id)
        if found is None:
            raise NotFoundError(f"no reservation {reservation_id!r}", code="unknown_reservation")
        return found

    def open(self, tenant_id: str) -> list[Reservation]:
        """The tenant's held reservations, soonest expiry first, at most `MAX_OPEN_LISTED`."""
        return self._ctx.repo.open_for_tenant(tenant_id, limit=MAX_OPEN_LISTED)

    def sweep(self, *, should_continue: Callable[[], bool] = lambda: True) -> SweepReport:
        """Expire what is due and send usage a crashed settle left unsent."""
        return sweep_due(self._ctx, should_continue=should_continue)
