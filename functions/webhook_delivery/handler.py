"""Webhook queue (EventBridge rule target) -> signed POSTs to the tenant's endpoints
(billing_platform.tenant_webhooks.delivery). A message with a failed endpoint is reported failed and
postponed by its backoff delay; endpoints that already answered 2xx are not sent it again."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_platform.container import PerContainer
from billing_platform.observability import logger, metrics, tracer
from billing_platform.settings import get_settings
from billing_platform.tenant_webhooks.delivery import WebhookDeliveryService, retry_delay
from billing_platform.tenant_webhooks.queue import DeliveryQueue

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
service = PerContainer(WebhookDeliveryService)
queue = PerContainer(lambda: DeliveryQueue(get_settings().webhook_queue_url))


class DeliveryIncomplete(Exception):
    """Some endpoint did not take the event: the message fails and comes back after its backoff."""


@tracer.capture_method(capture_response=False)
def record_handler(record: SQSRecord) -> int:
    logger.set_correlation_id(record.message_id)
    outcome = service().deliver(json.loads(record.body))
    metrics.add_metric(name="WebhooksDelivered", unit="Count", value=len(outcome.delivered))
    if not outcome.done:
        metrics.add_metric(name="WebhookDeliveryFailures", unit="Count", value=len(outcome.failed))
        attempts = int(record.attributes.approximate_receive_count or 1)
        queue().retry_later(record.receipt_handle, retry_delay(attempts))
        raise DeliveryIncomplete(f"{len(outcome.failed)} endpoint(s) failed")
    return len(outcome.delivered)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)
