"""Reservations: hold an estimate of quota for work whose cost is known only afterwards, then settle,
cancel or let it expire. Public API: `ReservationService`, `Reservation`, `ReservationState`.

Names load on first use: the entitlement library imports `reservations.handles` without pulling in the
service (and its import of the entitlement service) until a reservation is made."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from billing_platform.reservations.models import Reservation, ReservationState
    from billing_platform.reservations.service import ReservationService

_LAZY = {
    "Reservation": "billing_platform.reservations.models",
    "ReservationState": "billing_platform.reservations.models",
    "ReservationService": "billing_platform.reservations.service",
}
__all__ = ["Reservation", "ReservationService", "ReservationState"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
