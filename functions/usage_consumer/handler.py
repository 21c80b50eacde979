"""SQS usage queue -> raw usage records (partial batch response: only failed messages come back;
a poison message fails every time and reaches the DLQ after the queue's maxReceiveCount)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_platform.container import PerContainer
from billing_platform.errors import PoisonMessageError
from billing_platform.observability import logger, metrics, tracer
from billing_platform.usage.consumer import UsageConsumerService

# A batch whose every message failed is still a partial response (all failed), not a function error:
# one poison message alone in a batch should not look like a crashing consumer.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
service = PerContainer(UsageConsumerService)


@tracer.capture_method(capture_response=False)
def record_handler(record: SQSRecord) -> int:
    logger.set_correlation_id(record.message_id)
    try:
        written = service().process_message(record.body)
    except PoisonMessageError as exc:
        # Logged where decided; the message fails like any other so SQS moves it to the DLQ in time.
        logger.error(
            "poison usage message",
            extra={"reason": exc.message, "receive_count": record.attributes.approximate_receive_count},
        )
        raise
    metrics.add_metric(name="UsageRecordsWritten", unit="Count", value=written)
    return written


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)
