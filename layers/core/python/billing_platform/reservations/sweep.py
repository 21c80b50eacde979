"""Use case: the scheduled sweep (every minute). Reads what is due from the sparse index, partition by
partition (a range query, never a scan): held reservations past their expiry are given back through the
same guarded transition as a cancel, and settled ones whose usage record a crashed settle did not send are
sent (same record id). So an abandoned reservation is given back within about a minute of its expiry."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from billing_platform.reservations.context import ReservationContext
from billing_platform.reservations.models import ReservationState
from billing_platform.reservations.repository import DUE_PARTITIONS
from billing_platform.reservations.resolve import expire, send_usage

logger = logging.getLogger(__name__)

PAGE = 100


@dataclass
class SweepReport:
    expired: int = 0  # given back by this sweep
    lost_races: int = 0  # resolved by someone else between the index read and the transition
    metered: int = 0  # usage records sent for a settle that had not sent its own
    unsent: int = 0
    complete: bool = True  # False: stopped early (time budget); the next run continues

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def sweep_due(ctx: ReservationContext, *, should_continue: Callable[[], bool] = lambda: True) -> SweepReport:
    report = SweepReport()
    for partition in range(DUE_PARTITIONS):
        while True:
            if not should_continue():
                report.complete = False
                return report
            now = ctx.clock()
            due = ctx.repo.due(partition, now, limit=PAGE)
            progressed = 0
            for reservation in due:
                if reservation.due(now):
                    _outcome, replayed = expire(ctx, reservation)
                    if not replayed:
                        report.expired += 1
                    else:
                        report.lost_races += 1
                    progressed += 1
                elif reservation.state is ReservationState.SETTLED and reservation.meter_pending:
                    if send_usage(ctx, reservation):
                        report.metered += 1
                        progressed += 1
                    else:
                        report.unsent += 1
            if len(due) < PAGE or not progressed:
                break
    if report.expired or report.metered or report.unsent:
        logger.info("reservation sweep", extra=report.to_dict())
    return report
