"""Reservations: hold an estimate of quota for work whose cost is known only afterwards, then settle,
cancel or let it expire. Public API: `ReservationService`, `Reservation`, `ReservationState`."""

from billing_platform.reservations.models import Reservation, ReservationState
from billing_platform.reservations.service import ReservationService

__all__ = ["Reservation", "ReservationService", "ReservationState"]
