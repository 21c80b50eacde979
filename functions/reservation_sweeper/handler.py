"""Scheduled every minute (EventBridge, resources.RESERVATION_SWEEPER.schedule_minutes): give back
reservations past their expiry, and send usage records a crashed settle left unsent
(billing_platform.reservations.sweep)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_platform.container import PerContainer
from billing_platform.observability import logger, metrics, tracer
from billing_platform.reservations import ReservationService

# Stop starting new work this long before the timeout; the next run (a minute later) continues.
SAFETY_MARGIN_MS = 10_000
service = PerContainer(ReservationService)


@logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = service().sweep(should_continue=lambda: context.get_remaining_time_in_millis() > SAFETY_MARGIN_MS)
    metrics.add_metric(name="ReservationsExpired", unit="Count", value=report.expired)
    metrics.add_metric(name="ReservationUsageResent", unit="Count", value=report.metered)
    return report.to_dict()
