"""Powertools Logger, Tracer and Metrics shared by the handlers (one set per process). Service name and
metrics namespace come from POWERTOOLS_SERVICE_NAME (else "billing") / POWERTOOLS_METRICS_NAMESPACE. The
layer's own modules log to standard `billing_platform.*` loggers, which `logs.route_to` sends through this
Logger's handler once this module is imported (inside Lambda, always: see billing_platform.logs).

The tracer is built only when tracing is on: constructing a Powertools `Tracer` imports the X-Ray SDK and
patches every library it knows (requests, httplib, botocore ...), about a third of a function's cold
import, even when tracing is off. With it off the decorators hand back the function itself."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast, overload

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from billing_platform.logs import route_to, service_name

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

_F = TypeVar("_F", bound=Callable[..., Any])
_TRUTHY = frozenset({"1", "y", "yes", "t", "true", "on"})


def tracing_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Powertools' own rule for whether its Tracer traces: inside Lambda (LAMBDA_TASK_ROOT), not under SAM
    local or Chalice, and POWERTOOLS_TRACE_DISABLED not set to a true value."""
    env = os.environ if environ is None else environ
    if env.get("POWERTOOLS_TRACE_DISABLED", "false").strip().lower() in _TRUTHY:
        return False
    return bool(env.get("LAMBDA_TASK_ROOT")) and not (env.get("AWS_SAM_LOCAL") or env.get("AWS_CHALICE_CLI_MODE"))


class TraceDecorator(Protocol):
    """`@decorator` or `@decorator(capture_response=..., capture_error=...)`, as Powertools' Tracer has them."""

    @overload
    def __call__(self, func: _F, /) -> _F: ...

    @overload
    def __call__(
        self, func: None = None, /, *, capture_response: bool | None = None, capture_error: bool | None = None
    ) -> Callable[[_F], _F]: ...


class LazyTracer:
    """The decorators of Powertools' `Tracer`, with the Tracer (and the X-Ray SDK) created on first use and
    only when `tracing_enabled()`; otherwise each decorator returns the function unchanged."""

    def __init__(self) -> None:
        self._tracer: Tracer | None = None
        self._enabled: bool | None = None

    @property
    def enabled(self) -> bool:
        if self._enabled is None:
            self._enabled = tracing_enabled()
        return self._enabled

    @property
    def tracer(self) -> Tracer:
        """The Powertools Tracer itself (created now if it was not: this imports the X-Ray SDK)."""
        if self._tracer is None:
            from aws_lambda_powertools import Tracer

            self._tracer = Tracer()
        return self._tracer

    def _decorator(self, wrap: Callable[[Tracer, Any, bool | None, bool | None], Any]) -> TraceDecorator:
        """A decorator usable bare or with options, as Powertools' own: `wrap(tracer, func, capture_response,
        capture_error)` when tracing is on; the function unchanged when it is off."""

        def decorator(
            func: Any = None, *, capture_response: bool | None = None, capture_error: bool | None = None
        ) -> Any:
            def decorate(target: Any) -> Any:
                return wrap(self.tracer, target, capture_response, capture_error) if self.enabled else target

            return decorate if func is None else decorate(func)

        return cast(TraceDecorator, decorator)

    @property
    def capture_lambda_handler(self) -> TraceDecorator:
        """`Tracer.capture_lambda_handler` when tracing is on; the handler itself when it is off."""
        return self._decorator(
            lambda tracer, func, response, error: tracer.capture_lambda_handler(
                func, capture_response=response, capture_error=error
            )
        )

    @property
    def capture_method(self) -> TraceDecorator:
        """`Tracer.capture_method` (a subsegment per call) when tracing is on; the function itself when off."""
        return self._decorator(
            lambda tracer, func, response, error: tracer.capture_method(capture_response=response, capture_error=error)(
                func
            )
        )

    def reset(self) -> None:
        """Decide again from the environment on next use (tests switch tracing on and off)."""
        self._enabled = None
        self._tracer = None


logger = Logger(service=service_name())
route_to(logger)
tracer = LazyTracer()
metrics = Metrics(service=service_name())


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
