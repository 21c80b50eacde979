"""The freshness figures and the alarm thresholds they are judged by (infra's monitoring construct alarms
on the same metrics with these same numbers)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

# A usage message older than this in the queue means the consumer is not draining it.
QUEUE_AGE_THRESHOLD_SECONDS = 15 * 60
# The aggregator must keep up with the usage stream; records older than this mean it is falling behind.
ITERATOR_AGE_THRESHOLD_SECONDS = 5 * 60
# The reporter runs every 15 minutes; usage unreported for this long pages someone.
METER_LAG_THRESHOLD_SECONDS = 2 * 3600
# Any message in a dead-letter queue is a failure someone must look at.
DLQ_DEPTH_THRESHOLD = 1
# CloudWatch metrics are read over this window (the alarms' period).
METRIC_WINDOW_SECONDS = 5 * 60


class Level(StrEnum):
    OK = "ok"
    LATE = "late"  # at or past its alarm threshold
    UNKNOWN = "unknown"  # no datapoint in the window (nothing emitted it)


def judge(value: float | None, threshold: float) -> Level:
    if value is None:
        return Level.UNKNOWN
    return Level.LATE if value >= threshold else Level.OK


@dataclass(frozen=True)
class QueueDepth:
    visible: int
    in_flight: int


@dataclass(frozen=True)
class MeterRun:
    """What the meter reporter's last run left: when it started, how far behind it found the oldest
    unreported hour (`MeterReporterLag`), and what it sent."""

    started_at: datetime
    lag_seconds: int
    events_sent: int
    events_failed: int


@dataclass(frozen=True)
class ResourceMeterMark:
    """A tenant's last hour reported to Stripe for one metered resource, and its units so far."""

    resource_type: str
    last_reported_hour: str | None
    reported: str | None
