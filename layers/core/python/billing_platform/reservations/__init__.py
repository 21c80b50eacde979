"""Reservations: hold an estimate of quota for work whose cost is known only afterwards, then settle,
cancel or let it expire. Public API: `ReservationService`, `Reservation`, `ReservationState`.

- models.py: the reservation and its states (values); repository.py: the reservation items and the
  transactions that resolve them (the only module of the package that reaches DynamoDB);
- service.py: `ReservationService`, the facade; its use cases, one module each since together they pass
  ~400 lines: reserve.py (hold an estimate through `entitlements.take`), resolve.py (settle, cancel,
  expire), sweep.py (the scheduled expiry); context.py: what they share;
- meter.py: the usage record a settle sends to the usage queue; handles.py: what the library's
  `reserve` hands back (a hold that settles itself); schemas.py: the HTTP bodies.

Names load on first use: the entitlement library imports `reservations.handles` without pulling in the
service (and its import of the entitlement service) until a reservation is made.
"""

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
