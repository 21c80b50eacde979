"""The usage queue: packing encoded records into SQS messages and sending them with SendMessageBatch.

The only usage code that speaks SQS. Packing is shared by the tracker and the HTTP ingest so both put
as many records as fit into one message and as many messages as fit into one request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from billing_platform import clients
from billing_platform.usage.models import SQS_MAX_BYTES, message_body, message_overhead_bytes

logger = logging.getLogger(__name__)

SEND_BATCH_MAX_ENTRIES = 10
SEND_ATTEMPTS = 3
# SQS counts message bodies (plus attributes, none here) against both limits; keep a margin for the
# entry ids and request framing rather than sailing at the exact byte.
MESSAGE_BUDGET_BYTES = SQS_MAX_BYTES - 1024
REQUEST_BUDGET_BYTES = SQS_MAX_BYTES - 1024


@dataclass(frozen=True)
class SendFailure:
    """One message of a batch that SQS did not accept."""

    index: int
    code: str
    sender_fault: bool


@dataclass(frozen=True)
class SendOutcome:
    failures: list[SendFailure] = field(default_factory=list)


class UsageSender(Protocol):
    """Sends up to 10 message bodies (at most 256 KiB together) in one request; reports the ones
    SQS refused. Raises if the request itself failed (then none of them may have been sent)."""

    def send_batch(self, bodies: Sequence[str]) -> SendOutcome: ...


class SqsUsageQueue:
    """`UsageSender` over SQS SendMessageBatch."""

    def __init__(self, queue_url: str, client: Any = None) -> None:
        self.queue_url = queue_url
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or clients.sqs()

    def send_batch(self, bodies: Sequence[str]) -> SendOutcome:
        if not bodies:
            return SendOutcome()
        entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies)]
        response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        return SendOutcome(
            [
                SendFailure(int(f["Id"]), str(f.get("Code", "unknown")), bool(f.get("SenderFault", False)))
                for f in response.get("Failed", [])
            ]
        )


@dataclass(frozen=True)
class PackedMessage:
    """One message body and how many records (from the front of the packed run) it carries."""

    body: str
    records: int


def pack_messages(encoded: Sequence[str], max_records: int) -> list[PackedMessage]:
    """Group wire-encoded records, in order, into message bodies of at most `max_records` records and
    MESSAGE_BUDGET_BYTES bytes."""
    out: list[PackedMessage] = []
    current: list[str] = []
    size = message_overhead_bytes()
    for record in encoded:
        extra = len(record.encode()) + (1 if current else 0)
        if current and (len(current) >= max_records or size + extra > MESSAGE_BUDGET_BYTES):
            out.append(PackedMessage(message_body(current), len(current)))
            current, size = [], message_overhead_bytes()
            extra = len(record.encode())
        current.append(record)
        size += extra
    if current:
        out.append(PackedMessage(message_body(current), len(current)))
    return out


def group_requests(messages: Sequence[PackedMessage]) -> list[list[int]]:
    """Group messages (as indices), in order, into SendMessageBatch requests (10 entries, 256 KiB in total)."""
    out: list[list[int]] = []
    current: list[int] = []
    size = 0
    for message in range(len(messages)):
        body_bytes = len(messages[message].body.encode())
        if current and (len(current) >= SEND_BATCH_MAX_ENTRIES or size + body_bytes > REQUEST_BUDGET_BYTES):
            out.append(current)
            current, size = [], 0
        current.append(message)
        size += body_bytes
    if current:
        out.append(current)
    return out


@dataclass
class SendReport:
    """What one send of many records achieved. `unsent` are the wire records (in order) of the
    messages that SQS did not take after every attempt."""

    sent: int = 0
    unsent: list[str] = field(default_factory=list)
    requests: int = 0
    messages: int = 0


def send_records(
    sender: UsageSender,
    encoded: Sequence[str],
    max_records: int,
    *,
    attempts: int = SEND_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> SendReport:
    """Pack and send wire-encoded records. Refused entries are retried (only they, with backoff); a
    request that raises counts as all refused. Once a request has all its messages refused after every
    attempt, the queue is taken as unreachable and the rest is not tried (it is reported unsent)."""
    report = SendReport()
    messages = pack_messages(encoded, max_records)
    starts: list[int] = []
    cursor = 0
    for message in messages:
        starts.append(cursor)
        cursor += message.records
    failed: list[int] = []
    batches = group_requests(messages)
    for position, request in enumerate(batches):
        refused = _send_with_retries(sender, request, messages, report, attempts, sleep)
        failed.extend(refused)
        if refused and len(refused) == len(request):
            for later in batches[position + 1 :]:
                failed.extend(later)
            break
    for index in sorted(failed):
        report.unsent.extend(encoded[starts[index] : starts[index] + messages[index].records])
    report.sent = len(encoded) - len(report.unsent)
    return report


def _send_with_retries(
    sender: UsageSender,
    request: list[int],
    messages: Sequence[PackedMessage],
    report: SendReport,
    attempts: int,
    sleep: Callable[[float], None],
) -> list[int]:
    remaining = list(request)
    for attempt in range(attempts):
        if attempt:
            sleep(0.05 * 2**attempt)
        report.requests += 1
        try:
            outcome = sender.send_batch([messages[i].body for i in remaining])
        except Exception as exc:  # any transport error: nothing is known to be sent, all stay pending
            logger.warning("SendMessageBatch failed", extra={"error": str(exc), "attempt": attempt + 1})
            continue
        refused = {f.index for f in outcome.failures}
        report.messages += len(remaining) - len(refused)
        if refused:
            logger.warning(
                "SQS refused usage messages",
                extra={"codes": sorted({f.code for f in outcome.failures}), "attempt": attempt + 1},
            )
        remaining = [m for i, m in enumerate(remaining) if i in refused]
        if not remaining:
            return []
    return remaining
