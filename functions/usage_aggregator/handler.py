"""Usage table stream -> hour / day / month aggregates, exactly once under retries with any batch
boundaries (per-row watermarks: billing_platform.usage.aggregator). A row that could not be written
reports its first unapplied record as the batch item failure: Lambda resumes there."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_platform.container import PerContainer
from billing_platform.observability import logger, metrics, tracer
from billing_platform.usage.aggregator import UsageAggregationService

service = PerContainer(UsageAggregationService)


# A stream batch has no request id of its own: lines carry the invocation's function_request_id.
@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = service().apply_event(event)
    metrics.add_metric(name="UsageRecordsAggregated", unit="Count", value=result.applied)
    if result.skipped_duplicates:
        metrics.add_metric(name="UsageRecordsAlreadyAggregated", unit="Count", value=result.skipped_duplicates)
    logger.debug(
        "usage batch aggregated",
        extra={
            "applied": result.applied,
            "skipped": result.skipped_duplicates,
            "ignored": result.ignored,
            "rows_written": result.rows_written,
            "write_requests": result.write_requests,
            "failed_from": result.failed_from,
        },
    )
    return result.to_lambda_response()
