"""The reads behind the freshness figures, the only freshness code that speaks boto3: queue depths (SQS),
the alarms' own CloudWatch metrics (AWS/SQS ApproximateAgeOfOldestMessage, AWS/Lambda IteratorAge), and
the meter reporter's items (through its repository). Read-only: nothing here writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from billing_platform import clients
from billing_platform.freshness.models import METRIC_WINDOW_SECONDS, MeterRun, QueueDepth, ResourceMeterMark
from billing_platform.metering.repository import MeterWatermarkRepository
from billing_platform.settings import Settings


class FreshnessRepository:
    def __init__(self, settings: Settings, *, sqs: Any = None, cloudwatch: Any = None) -> None:
        self._settings = settings
        self._sqs = sqs
        self._cloudwatch = cloudwatch
        self._meter = MeterWatermarkRepository(settings)

    def queue_depth(self, queue_url: str) -> QueueDepth:
        attrs = (self._sqs or clients.sqs()).get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return QueueDepth(
            visible=int(attrs.get("ApproximateNumberOfMessages", 0)),
            in_flight=int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
        )

    def metric_maximum(self, namespace: str, name: str, dimension: tuple[str, str], now: datetime) -> float | None:
        """The newest 1-minute Maximum of a metric within the alarms' window, or None without a datapoint."""
        answer = (self._cloudwatch or clients.cloudwatch()).get_metric_statistics(
            Namespace=namespace,
            MetricName=name,
            Dimensions=[{"Name": dimension[0], "Value": dimension[1]}],
            StartTime=now - timedelta(seconds=METRIC_WINDOW_SECONDS),
            EndTime=now,
            Period=60,
            Statistics=["Maximum"],
        )
        points = sorted(answer.get("Datapoints", []), key=lambda p: p["Timestamp"])
        return float(points[-1]["Maximum"]) if points else None

    def meter_run(self) -> MeterRun | None:
        item = self._meter.last_run()
        if item is None:
            return None
        return MeterRun(
            started_at=datetime.fromisoformat(item["started_at"]["S"]).astimezone(UTC),
            lag_seconds=int(item["lag_seconds"]["N"]),
            events_sent=int(item["events_sent"]["N"]),
            events_failed=int(item["events_failed"]["N"]),
        )

    def meter_mark(self, tenant_id: str, resource_type: str) -> ResourceMeterMark:
        hour = self._meter.latest_hour(tenant_id, resource_type)
        return ResourceMeterMark(
            resource_type=resource_type,
            last_reported_hour=hour.hour if hour else None,
            reported=str(hour.reported) if hour else None,
        )
