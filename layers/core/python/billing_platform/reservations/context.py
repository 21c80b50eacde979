"""What every reservation use case works with, built once per container by `ReservationService`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from billing_platform.entitlements.service import EntitlementService
from billing_platform.reservations.meter import Meter
from billing_platform.reservations.repository import ReservationRepository


@dataclass(frozen=True)
class ReservationContext:
    entitlements: EntitlementService  # the quota's take path, slow path, catalog and layout cache
    repo: ReservationRepository
    meter: Meter
    clock: Callable[[], datetime]
