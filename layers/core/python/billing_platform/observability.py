"""Powertools Logger, Tracer and Metrics shared by the handlers and the layer (one set per process).
Service name and metrics namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

logger = Logger()
tracer = Tracer()
metrics = Metrics()


def count(name: str, value: float = 1, **dimensions: str) -> None:
    """Count `name` in the handler's metrics and, when dimensions are given, once more in its own EMF
    record with those dimensions (plus `service`), which the dashboard's SEARCH graphs break down by.
    A separate record because dimensions added to `metrics` would apply to every metric of the invocation."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    if not dimensions:
        return
    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=metrics.namespace) as metric:
        metric.add_dimension(name="service", value=metrics.service or "billing")
        for key, dim_value in dimensions.items():
            metric.add_dimension(name=key, value=dim_value)
