"""The meter reporter's CloudWatch metrics (EMF through Powertools), named once for code and dashboard."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools.metrics import MetricUnit, single_metric

if TYPE_CHECKING:  # the CDK dashboard imports the names without the reporter's dependencies
    from aws_lambda_powertools import Metrics

    from billing_platform.metering.service import MeterRunReport

EVENTS_SENT = "MeterEventsSent"
EVENTS_ALREADY_DELIVERED = "MeterEventsAlreadyDelivered"
EVENTS_FAILED = "MeterEventsFailed"
REPORTER_LAG = "MeterReporterLag"
UNITS_REPORTED = "MeterUnitsReported"
RESOURCE_DIMENSION = "resource"


def publish_run(metrics: Metrics, report: MeterRunReport) -> None:
    """Add one run's metrics to the invocation's EMF blob (flushed by `log_metrics`); units reported
    go out per resource as single metrics, since a dimension applies to every metric of its blob."""
    metrics.add_metric(name=EVENTS_SENT, unit=MetricUnit.Count, value=report.events_sent)
    metrics.add_metric(name=EVENTS_ALREADY_DELIVERED, unit=MetricUnit.Count, value=report.events_already_delivered)
    metrics.add_metric(name=EVENTS_FAILED, unit=MetricUnit.Count, value=report.events_failed)
    metrics.add_metric(name=REPORTER_LAG, unit=MetricUnit.Seconds, value=report.lag_seconds)
    for resource, units in sorted(report.units_reported.items()):
        with single_metric(
            name=UNITS_REPORTED, unit=MetricUnit.Count, value=float(units), namespace=metrics.namespace
        ) as metric:
            metric.add_dimension(name=RESOURCE_DIMENSION, value=resource)
