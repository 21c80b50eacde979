"""`billing-admin dlq redrive`: move the usage DLQ's messages back to the usage queue after a fix.

SQS `StartMessageMoveTask` does the same server-side on AWS, but emulators (moto 5.2) do not implement
it; receive -> send -> delete in batches of 10 works everywhere. A message is deleted from the DLQ only
after the usage queue accepted it, so a crash in between redrives it twice: harmless, the consumer
writes raw records under keys derived from the record ids (DESIGN invariant 3)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from billing_platform import clients

SQS_BATCH = 10
# Long enough to send and delete a batch; short enough that an interrupted run's messages come back soon.
RECEIVE_VISIBILITY_SECONDS = 60


class QueueRepository:
    """The SQS calls of the redrive (the only CLI code speaking SQS)."""

    def __init__(self, client: Any = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or clients.sqs()

    def depth(self, queue_url: str) -> dict[str, int]:
        attrs = self.client.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return {
            "visible": int(attrs.get("ApproximateNumberOfMessages", 0)),
            "in_flight": int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
        }

    def receive(
        self, queue_url: str, max_messages: int, wait_seconds: int, visibility: int = RECEIVE_VISIBILITY_SECONDS
    ) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.client.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=visibility,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        return messages

    def send_batch(self, queue_url: str, messages: list[dict[str, Any]]) -> set[str]:
        """Send copies (body and message attributes); returns the MessageIds that were accepted."""
        entries = []
        for message in messages:
            entry: dict[str, Any] = {"Id": message["MessageId"], "MessageBody": message["Body"]}
            if message.get("MessageAttributes"):
                entry["MessageAttributes"] = message["MessageAttributes"]
            entries.append(entry)
        response = self.client.send_message_batch(QueueUrl=queue_url, Entries=entries)
        return {entry["Id"] for entry in response.get("Successful", [])}

    def delete_batch(self, queue_url: str, messages: list[dict[str, Any]]) -> int:
        if not messages:
            return 0
        response = self.client.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]} for m in messages],
        )
        return len(response.get("Successful", []))


@dataclass
class RedriveReport:
    dlq_url: str
    target_url: str
    depth_before: dict[str, int] = field(default_factory=dict)
    moved: int = 0
    send_failed: int = 0
    dry_run: bool = False
    peeked: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dlq": self.dlq_url,
            "target": self.target_url,
            "depth_before": self.depth_before,
            "moved": self.moved,
            "send_failed": self.send_failed,
            "dry_run": self.dry_run,
            **({"sample": self.peeked} if self.dry_run else {}),
        }


def redrive(
    queues: QueueRepository,
    dlq_url: str,
    target_url: str,
    *,
    max_messages: int | None = None,
    dry_run: bool = False,
    wait_seconds: int = 1,
    on_batch: Callable[[int], None] = lambda _n: None,
) -> RedriveReport:
    """Move up to `max_messages` (all when None) from the DLQ to the target queue. Stops when the DLQ
    answers empty twice in a row. With `dry_run`, only counts and shows a few bodies (received with a
    zero visibility timeout, so they stay visible)."""
    report = RedriveReport(dlq_url=dlq_url, target_url=target_url, dry_run=dry_run)
    report.depth_before = queues.depth(dlq_url)
    if dry_run:
        for message in queues.receive(dlq_url, 3, wait_seconds, visibility=0):
            report.peeked.append(str(message["Body"])[:200])
        return report
    empty = 0
    while max_messages is None or report.moved < max_messages:
        want = SQS_BATCH if max_messages is None else min(SQS_BATCH, max_messages - report.moved)
        batch = queues.receive(dlq_url, want, wait_seconds)
        if not batch:
            empty += 1
            if empty >= 2:
                break
            continue
        empty = 0
        accepted = queues.send_batch(target_url, batch)
        sent = [m for m in batch if m["MessageId"] in accepted]
        report.send_failed += len(batch) - len(sent)
        report.moved += queues.delete_batch(dlq_url, sent)
        on_batch(len(sent))
        if len(sent) < len(batch):
            break  # the target refuses messages: stop instead of spinning; they stay in the DLQ
    return report
