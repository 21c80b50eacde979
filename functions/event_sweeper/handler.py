"""Scheduled (resources.EVENT_SWEEPER.schedule_minutes): grants expired with a balance -> billing.grant.expired,
and events a failed first attempt left pending -> published (billing_platform.events.sweeper)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_platform.container import PerContainer
from billing_platform.events.sweeper import EventSweeper
from billing_platform.observability import logger, metrics, tracer

sweeper = PerContainer(EventSweeper)


@logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = sweeper().run()
    metrics.add_metric(name="GrantExpiryEventsPublished", unit="Count", value=len(result.expired))
    metrics.add_metric(name="PendingEventsRepublished", unit="Count", value=len(result.republished))
    return {"expired": result.expired, "republished": result.republished}
