"""Billing table stream (counter and grant items only) -> quota threshold and grant depletion events on the
bus, once each (billing_platform.events.stream). A record that cannot be finished is the batch item
failure: Lambda resumes there."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_platform.container import PerContainer
from billing_platform.events.stream import QuotaEventProcessor
from billing_platform.observability import logger, metrics, tracer

processor = PerContainer(QuotaEventProcessor)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = processor().process(event.get("Records", []))
    metrics.add_metric(name="BillingEventsPublished", unit="Count", value=len(result.published))
    if result.failed_from:
        metrics.add_metric(name="BillingEventStreamFailures", unit="Count", value=1)
    return result.to_lambda_response()
