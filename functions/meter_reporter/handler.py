"""Scheduled (EventBridge, resources.METER_REPORTER.schedule_minutes): report metered usage to Stripe
billing meters, exactly once per unit (billing_platform.metering.service)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_platform.container import PerContainer
from billing_platform.metering.metrics import publish_run
from billing_platform.metering.service import MeterReporter
from billing_platform.observability import logger, metrics, tracer
from billing_platform.providers.meter_events import MeterEventSender
from billing_platform.settings import get_settings

# Stop claiming new work this long before the timeout: a claim in flight is finished by the next run.
SAFETY_MARGIN_MS = 30_000
# Tenant-days reported in parallel: a run is bound by Stripe round trips, not by DynamoDB.
WORKERS = 8


def _build_sender() -> MeterEventSender:
    """Stripe when the settings select it (production, Stripe test mode), else the in-memory mock."""
    if get_settings().uses_stripe:
        from billing_platform.providers.meter_events import StripeMeterEvents

        return StripeMeterEvents()
    from billing_platform.providers.meter_events import MockMeterEvents

    return MockMeterEvents()


sender = PerContainer(_build_sender)


# The EventBridge event id is the correlation id of a run.
@logger.inject_lambda_context(correlation_id_path="id")
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    reporter = MeterReporter(
        sender(),
        should_continue=lambda: context.get_remaining_time_in_millis() > SAFETY_MARGIN_MS,
        workers=WORKERS,
    )
    report = reporter.run()
    publish_run(metrics, report)
    return report.to_dict()
