"""SQS events exactly as Lambda's SQS event source delivers them (`{"Records": [...]}`), built through the
same converter the local stack's poller uses (`local_stack.lambda_events`)."""

from __future__ import annotations

import hashlib
import itertools
import json
import uuid
from typing import Any

from billing_platform import resources
from local_stack.lambda_events import sqs_record_from_message

REGION = "us-east-1"
ACCOUNT = "123456789012"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{resources.USAGE_QUEUE.local_name}"
_sent = itertools.count(1_795_694_400_000)


def sqs_record(
    body: Any,
    *,
    message_id: str | None = None,
    receive_count: int = 1,
    message_attributes: dict[str, str] | None = None,
    sent_timestamp_ms: int | None = None,
    queue_arn: str = QUEUE_ARN,
    region: str = REGION,
) -> dict[str, Any]:
    """One SQS record. A non-string `body` is JSON-encoded (as a producer would send it);
    `message_attributes` are String attributes."""
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    sent = sent_timestamp_ms if sent_timestamp_ms is not None else next(_sent)
    message: dict[str, Any] = {
        "MessageId": message_id or str(uuid.uuid4()),
        # Opaque to consumers; unique per receive, as SQS makes it.
        "ReceiptHandle": f"AQEB{uuid.uuid4().hex}{uuid.uuid4().hex}",
        "MD5OfBody": hashlib.md5(text.encode()).hexdigest(),
        "Body": text,
        "Attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": str(sent),
            "SenderId": "AIDAEXAMPLESENDER",
            "ApproximateFirstReceiveTimestamp": str(sent + 5),
        },
    }
    if message_attributes:
        message["MessageAttributes"] = {
            name: {"StringValue": value, "DataType": "String"} for name, value in message_attributes.items()
        }
    return sqs_record_from_message(message, queue_arn=queue_arn, region=region)


def sqs_event(*bodies: Any, **record_kwargs: Any) -> dict[str, Any]:
    """An SQS event with one record per body (keyword arguments go to every `sqs_record`)."""
    return {"Records": [sqs_record(body, **record_kwargs) for body in bodies]}


def sqs_event_of(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Wrap prepared records (for example with chosen message ids) into an event."""
    return {"Records": list(records)}


def failed_ids(response: dict[str, Any] | None) -> list[str]:
    """The message ids a handler reported in `batchItemFailures` (ReportBatchItemFailures)."""
    return [item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", [])]
