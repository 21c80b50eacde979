"""local_stack.runtime / local_stack.containers: each function runs in its own pool of worker processes
("containers"), as Lambda runs it: module state per container, cold on first use then warm, parallel up
to the function's concurrency, a timeout or a crash replaces the container. The handler is
tests/factories/container_workload.py standing in for real functions (what it does is in the event)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from billing_platform import resources
from local_stack.containers import (
    ContainerConfig,
    ContainerPool,
    FunctionCrashed,
    FunctionError,
    FunctionThrottled,
    FunctionTimeout,
)
from local_stack.runtime import FunctionRuntime

WORKLOAD = "tests.factories.container_workload"
API = resources.HEALTH.name  # has a route: invoked through API Gateway (integration timeout applies)
OTHER_API = resources.API_KEYS.name
WORKER = resources.USAGE_CONSUMER.name  # no route: only its own timeout applies
SPECS = (
    resources.HEALTH,
    resources.API_KEYS,
    replace(resources.USAGE_CONSUMER, timeout_seconds=3),
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def runtime() -> Iterator[FunctionRuntime]:
    rt = FunctionRuntime(SPECS, concurrency=2, integration_timeout=3.0, modules={spec.name: WORKLOAD for spec in SPECS})
    rt.configure({**os.environ, "WORKLOAD_MARK": "from configure"})
    yield rt
    rt.stop(fork_server=False)


def _in_threads(calls: list[tuple[str, dict[str, Any]]], runtime: FunctionRuntime) -> list[Any]:
    results: list[Any] = [None] * len(calls)

    def run(i: int, name: str, event: dict[str, Any]) -> None:
        results[i] = runtime.invoke(name, event)

    threads = [threading.Thread(target=run, args=(i, *call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_a_container_keeps_its_module_state_between_warm_invocations(runtime: FunctionRuntime) -> None:
    first = runtime.invoke(API, {})
    second = runtime.invoke(API, {})
    assert first["pid"] == second["pid"] != os.getpid()
    assert (first["invocations"], second["invocations"]) == (1, 2)
    assert runtime.stats()[API].cold_starts == 1


def test_concurrent_requests_to_one_function_run_in_separate_containers(runtime: FunctionRuntime) -> None:
    results = _in_threads([(API, {"action": "sleep", "seconds": 0.5})] * 2, runtime)
    assert len({r["pid"] for r in results}) == 2
    assert runtime.stats()[API].peak_concurrency == 2


def test_concurrency_caps_the_containers_and_queues_the_rest(runtime: FunctionRuntime) -> None:
    results = _in_threads([(API, {"action": "sleep", "seconds": 0.2})] * 5, runtime)
    assert all(r is not None for r in results), "a queued request was dropped"
    assert len({r["pid"] for r in results}) <= 2
    assert sum(r["invocations"] for r in results) >= 5


def test_a_slow_function_never_holds_up_another(runtime: FunctionRuntime) -> None:
    slow = threading.Thread(target=runtime.invoke, args=(WORKER, {"action": "sleep", "seconds": 0.8}))
    slow.start()
    try:
        answer = runtime.invoke(OTHER_API, {})
        assert slow.is_alive(), "the other function waited for the slow one"
        assert answer["function_name"].endswith(OTHER_API)
    finally:
        slow.join(10)


def test_containers_of_different_functions_have_their_own_module_state(runtime: FunctionRuntime) -> None:
    runtime.invoke(API, {})
    runtime.invoke(API, {})
    other = runtime.invoke(OTHER_API, {})
    assert other["invocations"] == 1


def test_past_the_integration_timeout_the_container_is_killed_and_replaced(runtime: FunctionRuntime) -> None:
    before = runtime.invoke(API, {})["pid"]
    with pytest.raises(FunctionTimeout) as timed_out:
        runtime.invoke(API, {"action": "sleep", "seconds": 30})
    assert timed_out.value.integration
    after = runtime.invoke(API, {})
    assert not _alive(before), "the timed-out container still runs"
    assert after["pid"] != before
    assert after["invocations"] == 1, "a fresh container (cold start) takes over"


def test_past_its_own_timeout_a_function_fails_without_the_integration_flag(runtime: FunctionRuntime) -> None:
    with pytest.raises(FunctionTimeout) as timed_out:
        runtime.invoke(WORKER, {"action": "sleep", "seconds": 30})
    assert not timed_out.value.integration
    assert runtime.invoke(WORKER, {})["invocations"] == 1


def test_a_crashed_container_is_replaced(runtime: FunctionRuntime) -> None:
    before = runtime.invoke(API, {})["pid"]
    with pytest.raises(FunctionCrashed):
        runtime.invoke(API, {"action": "crash"})
    after = runtime.invoke(API, {})
    assert after["pid"] != before
    assert runtime.stats()[API].crashes == 1


def test_a_handler_error_is_a_function_error_and_the_container_stays_warm(runtime: FunctionRuntime) -> None:
    before = runtime.invoke(API, {})["pid"]
    with pytest.raises(FunctionError, match="boom") as failed:
        runtime.invoke(API, {"action": "raise", "message": "boom"})
    assert failed.value.error_type == "RuntimeError"
    assert runtime.invoke(API, {})["pid"] == before


def test_a_container_runs_with_the_configured_environment_and_the_function_context(runtime: FunctionRuntime) -> None:
    assert runtime.invoke(API, {"action": "env", "name": "WORKLOAD_MARK"}) == {"value": "from configure"}
    answer = runtime.invoke(API, {})
    assert answer["function_name"] == f"billing-local-{API}"
    assert 0 < answer["remaining_ms"] <= resources.HEALTH.timeout_seconds * 1000
    assert answer["request_id"] != runtime.invoke(API, {})["request_id"]


def test_an_import_error_is_reported_as_the_function_error() -> None:
    rt = FunctionRuntime(SPECS, modules={API: "tests.factories.no_such_module"})
    rt.configure()
    try:
        assert "ModuleNotFoundError" in rt.warm([API])[API]
        with pytest.raises(FunctionError) as failed:
            rt.invoke(API, {})
        assert failed.value.error_type == "ModuleNotFoundError"
    finally:
        rt.stop(fork_server=False)


def test_a_full_queue_is_throttled_not_dropped() -> None:
    config = ContainerConfig(function=API, module=WORKLOAD, env=dict(os.environ), memory_mb=128, timeout_seconds=5)
    pool = ContainerPool(config, concurrency=1, queue_limit=0)
    busy = threading.Thread(target=pool.invoke, args=({"action": "sleep", "seconds": 1.0}, 5.0))
    busy.start()
    try:
        while pool.stats.peak_concurrency < 1:
            threading.Event().wait(0.01)
        with pytest.raises(FunctionThrottled):
            pool.invoke({}, 5.0)
        assert pool.stats.throttles == 1
    finally:
        busy.join(10)
        pool.close()
