"""The webhook queue's one call outside Lambda's event source: postponing a failed message (backoff)."""

from __future__ import annotations

from typing import Any

from billing_platform import clients


class DeliveryQueue:
    def __init__(self, queue_url: str | None, client: Any = None) -> None:
        self._url = queue_url
        self._client = client

    def retry_later(self, receipt_handle: str, delay_seconds: int) -> None:
        """Keep the message invisible for `delay_seconds` (it stays failed; SQS brings it back then)."""
        if not self._url:
            return  # no queue URL configured: SQS's own visibility timeout applies
        (self._client or clients.sqs()).change_message_visibility(
            QueueUrl=self._url, ReceiptHandle=receipt_handle, VisibilityTimeout=delay_seconds
        )
