"""The AWS-owned CloudWatch metrics the alarms (and the freshness figures) read, published to the local
CloudWatch (moto) as AWS publishes them for deployed resources:

- `AWS/SQS ApproximateAgeOfOldestMessage` and `ApproximateNumberOfMessagesVisible` per queue (DLQs too),
  sampled every few seconds from the emulated queues themselves (moto runs in this process): the age of
  the oldest message not yet deleted, as SQS defines it.
- `AWS/Lambda IteratorAge` per stream consumer: after each batch, the age of its last record, in ms, as
  Lambda reports it for an event-source mapping.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from local_stack.pollers import _Worker

log = logging.getLogger("local_stack.metrics")

SAMPLE_SECONDS = 5.0


def oldest_message_age_seconds(queue_name: str, account: str, region: str, now_ms: int | None = None) -> float:
    """Age of the oldest message of a moto queue that is still in it (visible or in flight), 0 if empty."""
    from moto.sqs.models import sqs_backends

    queue = sqs_backends[account][region].queues.get(queue_name)
    if queue is None:
        return 0.0
    messages: list[Any] = list(queue._messages)
    sent = [int(m.sent_timestamp) for m in messages if m.sent_timestamp is not None]
    if not sent:
        return 0.0
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    return max(0.0, (now_ms - min(sent)) / 1000)


class QueueMetrics(_Worker):
    """Samples each queue's oldest-message age and depth into the local CloudWatch."""

    name = "queue-metrics"

    def __init__(
        self, cloudwatch: Any, sqs: Any, queue_urls: list[str], *, region: str, every: float = SAMPLE_SECONDS
    ) -> None:
        super().__init__()
        self._cloudwatch = cloudwatch
        self._sqs = sqs
        self._queues = queue_urls
        self._region = region
        self._every = every

    def sample(self) -> None:
        now = datetime.now(UTC)
        data = []
        for url in self._queues:
            account, name = url.rstrip("/").split("/")[-2:]  # .../<account>/<queue name>
            visible = int(
                self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
                    "Attributes"
                ]["ApproximateNumberOfMessages"]
            )
            dims = [{"Name": "QueueName", "Value": name}]
            age = oldest_message_age_seconds(name, account, self._region)
            data.append(
                {
                    "MetricName": "ApproximateAgeOfOldestMessage",
                    "Dimensions": dims,
                    "Timestamp": now,
                    "Value": age,
                    "Unit": "Seconds",
                }
            )
            data.append(
                {
                    "MetricName": "ApproximateNumberOfMessagesVisible",
                    "Dimensions": dims,
                    "Timestamp": now,
                    "Value": visible,
                    "Unit": "Count",
                }
            )
        self._cloudwatch.put_metric_data(Namespace="AWS/SQS", MetricData=data)

    def run(self) -> None:
        while not self.stopping:
            try:
                self.sample()
            except Exception:
                log.exception("queue metrics not published")
            self._stop.wait(self._every)


def iterator_age_reporter(cloudwatch: Any) -> Any:
    """A StreamPoller callback: publish `AWS/Lambda IteratorAge` of a delivered batch."""

    def report(function: str, last_record_created: float) -> None:
        age_ms = max(0.0, (time.time() - last_record_created) * 1000)
        try:
            cloudwatch.put_metric_data(
                Namespace="AWS/Lambda",
                MetricData=[
                    {
                        "MetricName": "IteratorAge",
                        "Dimensions": [{"Name": "FunctionName", "Value": function}],
                        "Timestamp": datetime.now(UTC),
                        "Value": age_ms,
                        "Unit": "Milliseconds",
                    }
                ],
            )
        except Exception:
            log.exception("IteratorAge not published")

    return report
