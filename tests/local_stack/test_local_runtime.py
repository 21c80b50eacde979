"""local_stack.runtime: handlers share one process, so they must not run at the same time (Powertools
keeps the current event, logger keys and metrics at process level)."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from billing_platform import resources
from local_stack.runtime import FunctionRuntime


def _runtime_with(**handlers: Any) -> FunctionRuntime:
    runtime = FunctionRuntime()
    for name, handler in handlers.items():
        runtime._modules[name] = SimpleNamespace(handler=handler)  # type: ignore[assignment]
    return runtime


def test_two_functions_never_run_at_the_same_time() -> None:
    first_running = threading.Event()
    release_first = threading.Event()
    order: list[str] = []

    def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
        order.append("first:start")
        first_running.set()
        release_first.wait(5)
        order.append("first:end")
        return {"statusCode": 200}

    def fast(event: dict[str, Any], context: Any) -> dict[str, Any]:
        order.append("second")
        return {"statusCode": 200}

    runtime = _runtime_with(**{resources.API_KEYS.name: slow, resources.STRIPE_WEBHOOK.name: fast})
    first = threading.Thread(target=runtime.invoke, args=(resources.API_KEYS.name, {}))
    first.start()
    assert first_running.wait(5)
    second = threading.Thread(target=runtime.invoke, args=(resources.STRIPE_WEBHOOK.name, {}))
    second.start()
    second.join(0.3)
    assert second.is_alive(), "the second function ran while the first was still running"
    release_first.set()
    first.join(5)
    second.join(5)
    assert order == ["first:start", "first:end", "second"]


def test_the_context_carries_the_function_settings() -> None:
    seen: list[Any] = []
    runtime = _runtime_with(**{resources.USAGE_AGGREGATOR.name: lambda event, context: seen.append(context)})
    runtime.invoke(resources.USAGE_AGGREGATOR.name, {})
    (context,) = seen
    assert context.memory_limit_in_mb == resources.USAGE_AGGREGATOR.memory_mb
    assert 0 < context.get_remaining_time_in_millis() <= resources.USAGE_AGGREGATOR.timeout_seconds * 1000
    assert context.function_name.endswith(resources.USAGE_AGGREGATOR.name)


def test_an_exception_is_a_function_error_and_releases_the_process() -> None:
    def broken(event: dict[str, Any], context: Any) -> None:
        raise RuntimeError("boom")

    runtime = _runtime_with(**{resources.HEALTH.name: broken, resources.API_KEYS.name: lambda e, c: "ok"})
    with pytest.raises(RuntimeError, match="boom"):
        runtime.invoke(resources.HEALTH.name, {})
    assert runtime.invoke(resources.API_KEYS.name, {}) == "ok"
