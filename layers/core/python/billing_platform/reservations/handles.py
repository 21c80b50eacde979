"""What `enforcer.reserve(...)` hands back: a held reservation that settles itself when its block ends.

    async with enforcer.reserve(tenant_id, "tokens", 4000) as r:   # async face
        reply = await llm.generate(prompt)
        r.settle(reply.usage.total_tokens)

    with enforcer.sync.reserve(tenant_id, "tokens", 4000) as r:     # blocking face (Lambda)
        ...
        r.settle(actual)

`r.settle(actual)` records the actual amount; the settle itself is sent when the block ends. A block that
ends without a recorded actual settles the estimate if it succeeded and cancels if it raised; an actual
recorded before an error is still charged (the work it measured was done). Outside a block, call
`enforcer.settle(r, actual)` / `enforcer.cancel(r)` (or the `.sync` twins). `r.result` is the reservation
as resolved, once the block has ended.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import Any

from billing_platform.errors import UnprocessableError
from billing_platform.offload import run_blocking
from billing_platform.reservations.models import Reservation

logger = logging.getLogger(__name__)

Settle = Callable[[Reservation, Decimal], Reservation]
Cancel = Callable[[Reservation], Reservation]


class SyncReservationHold:
    """A held reservation (blocking face). `reservation_id`, `estimate` and `reservation` describe it."""

    def __init__(self, reservation: Reservation, settle: Settle, cancel: Cancel) -> None:
        self.reservation = reservation
        self.result: Reservation | None = None
        self._actual: Decimal | None = None
        self._settle = settle
        self._cancel = cancel

    @property
    def reservation_id(self) -> str:
        return self.reservation.reservation_id

    @property
    def estimate(self) -> Decimal:
        return self.reservation.estimate

    def settle(self, actual: Decimal | int | str) -> None:
        """Record the actual amount; it is settled when the block ends."""
        if isinstance(actual, bool | float):
            raise UnprocessableError("quantity must be a Decimal, an int or a decimal string", code="invalid_quantity")
        try:
            self._actual = Decimal(str(actual)) if not isinstance(actual, Decimal) else actual
        except InvalidOperation:
            raise UnprocessableError(f"quantity {actual!r} is not a number", code="invalid_quantity") from None

    def _finish(self, failed: bool) -> Reservation:
        if self._actual is None and failed:
            self.result = self._cancel(self.reservation)
        else:
            self.result = self._settle(self.reservation, self.estimate if self._actual is None else self._actual)
        return self.result

    def __repr__(self) -> str:
        """What is held and what became of it, e.g. ``<SyncReservationHold res_… tenant=t_a tokens estimate=40
        settled charged=25 given_back=15>`` (a settle recorded inside the block shows as ``actual=…``)."""
        current = self.result or self.reservation
        parts = [
            current.reservation_id,
            f"tenant={current.tenant_id}",
            current.resource_type,
            f"estimate={current.estimate}",
            current.state.value,
        ]
        if current.held:
            parts.append(f"due_at={current.due_at.isoformat()}")
            if self._actual is not None:
                parts.append(f"actual={self._actual} (settled when the block ends)")
        else:
            parts += [f"charged={current.charged}", f"given_back={current.given_back}"]
            if current.uncovered:
                parts.append(f"uncovered={current.uncovered}")
        return f"<SyncReservationHold {' '.join(parts)}>"

    def __enter__(self) -> SyncReservationHold:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self._finish(False)
            return
        try:
            self._finish(True)
        except Exception:
            # The block's own error is what the caller must see; the sweep gives the hold back at expiry.
            logger.exception("could not resolve the reservation after the block failed", extra=_ids(self.reservation))


class ReservationHold:
    """`enforcer.reserve(...)` on the async face: ``await`` it for the hold, or ``async with`` it to have
    the block settle (or cancel) it at the end. The reserve is sent when first awaited or entered."""

    def __init__(self, reserve: Callable[[], SyncReservationHold]) -> None:
        self._reserve = reserve
        self._hold: SyncReservationHold | None = None

    async def _held(self) -> SyncReservationHold:
        if self._hold is None:
            self._hold = await run_blocking(self._reserve)
        return self._hold

    async def settle(self, actual: Decimal | int | str) -> None:
        """Settle the hold at `actual` (see `SyncReservationHold.settle`), reserving first if not yet held."""
        hold = await self._held()
        await run_blocking(hold.settle, actual)

    def __await__(self) -> Generator[Any, None, SyncReservationHold]:
        return self._held().__await__()

    async def __aenter__(self) -> SyncReservationHold:
        return await self._held()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        hold = self._hold
        if hold is None:
            return
        await run_blocking(hold.__exit__, exc_type, exc, tb)


def _ids(reservation: Reservation) -> dict[str, str]:
    return {"tenant_id": reservation.tenant_id, "reservation_id": reservation.reservation_id}
