"""Runs the real handlers of functions/<name>/handler.py as Lambda runs them: each function in its own
pool of worker processes ("containers", `local_stack.containers`), each with its own module state, so
requests to one function run in parallel and different functions never wait for each other.

Powertools keeps per-invocation state at process level (`BaseRouter.current_event`, Logger keys,
Metrics), which is right in Lambda, where one container runs one invocation at a time, and is right
here for the same reason: a container never runs two invocations at once.

API functions (those with routes, and the authorizer) are invoked through API Gateway, whose integration
timeout (29 s) caps the wait even when the function's own timeout is longer."""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

from billing_platform import resources
from billing_platform.resources import FunctionSpec

log = logging.getLogger("local_stack.runtime")

# API Gateway's maximum integration timeout for REST APIs.
INTEGRATION_TIMEOUT_SECONDS = 29.0


class FunctionRuntime:
    """Container pools per function, created once `configure()` gave them their environment.

    `concurrency` overrides every function's `local_concurrency`; `modules` maps a function name to the
    module holding its `handler` (default `functions.<name>.handler`); `setup` runs in each container
    after its environment is set and before the handler is imported."""

    def __init__(
        self,
        specs: tuple[FunctionSpec, ...] = resources.FUNCTIONS,
        *,
        region: str = "us-east-1",
        concurrency: int | None = None,
        integration_timeout: float = INTEGRATION_TIMEOUT_SECONDS,
        modules: Mapping[str, str] | None = None,
        timeout_scale: float = 1.0,
    ) -> None:
        from local_stack.containers import ContainerPool

        self._specs = {spec.name: spec for spec in specs}
        self._region = region
        self._concurrency = concurrency
        # Timeouts are wall-clock, as Lambda's: on a machine whose CPU is taken by others a handler can need
        # several times its deployed timeout. The test suites' stacks run with a scale (LOCAL_TIMEOUT_SCALE).
        self._timeout_scale = timeout_scale
        self._integration_timeout = integration_timeout * timeout_scale
        self._module_names = dict(modules or {})
        self._pools: dict[str, ContainerPool] = {}
        self._modules: dict[str, ModuleType] = {}
        self._import_lock = threading.Lock()
        self._env: dict[str, str] | None = None
        self._setup: Callable[[], None] | None = None

    def spec(self, name: str) -> FunctionSpec:
        return self._specs[name]

    def module_name(self, name: str) -> str:
        return self._module_names.get(name, f"functions.{name}.handler")

    def concurrency(self, name: str) -> int:
        return self._concurrency or self._specs[name].local_concurrency

    def configure(self, env: Mapping[str, str] | None = None, *, setup: Callable[[], None] | None = None) -> None:
        """The environment every container gets (default: this process's, now) and its set-up hook."""
        from local_stack.containers import ContainerConfig, ContainerPool

        self._env = dict(os.environ if env is None else env)
        self._setup = setup
        for name, spec in self._specs.items():
            config = ContainerConfig(
                function=name,
                module=self.module_name(name),
                env=self._env,
                memory_mb=spec.memory_mb,
                timeout_seconds=spec.timeout_seconds * self._timeout_scale,
                region=self._region,
                setup=setup,
            )
            self._pools[name] = ContainerPool(config, self.concurrency(name))

    def _api_function(self, spec: FunctionSpec) -> bool:
        return bool(spec.routes) or spec.name == resources.AUTHORIZER.name

    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        """Run the handler in one of the function's containers. Raises what Lambda reports: FunctionError
        (the handler raised), FunctionTimeout, FunctionCrashed, FunctionThrottled."""
        if not self._pools:
            self.configure()
        spec = self._specs[name]
        budget = self._integration_timeout if self._api_function(spec) else None
        return self._pools[name].invoke(event, spec.timeout_seconds * self._timeout_scale, budget=budget)

    def warm(self, names: list[str] | None = None) -> dict[str, str]:
        """Start one container per function now, in parallel (the stack's start-up, so import errors show
        at once). Returns name -> error for functions whose handler did not import."""
        from local_stack.containers import FunctionError

        if not self._pools:
            self.configure()
        names = list(self._specs) if names is None else names
        failures: dict[str, str] = {}

        def start(name: str) -> None:
            try:
                self._pools[name].prewarm()
            except FunctionError as exc:
                failures[name] = f"{exc.error_type}: {exc}"
            except Exception as exc:
                failures[name] = f"{type(exc).__name__}: {exc}"

        with ThreadPoolExecutor(max_workers=len(names) or 1, thread_name_prefix="warm") as pool:
            list(pool.map(start, names))
        return failures

    def warm_in_background(self) -> threading.Thread:
        """`warm()` on a daemon thread, import failures logged: the stack is ready before its containers
        are (a request that comes first starts its own, as a cold start)."""

        def run() -> None:
            for name, reason in self.warm().items():
                log.error("functions/%s not loaded: %s", name, reason)

        thread = threading.Thread(target=run, name="warm-containers", daemon=True)
        thread.start()
        return thread

    def stats(self) -> dict[str, Any]:
        return {name: pool.stats for name, pool in self._pools.items()}

    def stop(self, *, fork_server: bool = True) -> None:
        """Stop every container, and the fork server unless `fork_server` is False (tests that start many
        runtimes keep it: its preload is the slow part of a first cold start)."""
        from local_stack.containers import stop_fork_server

        for pool in self._pools.values():
            pool.close()
        if fork_server:  # also when stopped before configure(): the stack starts it first thing
            stop_fork_server()

    # -- in this process: introspection only (the OpenAPI document), never invocation

    def module(self, name: str) -> ModuleType:
        """The handler module imported into this process (for its resolver's OpenAPI schema)."""
        with self._import_lock:
            if name not in self._modules:
                self._modules[name] = importlib.import_module(self.module_name(name))
            return self._modules[name]
