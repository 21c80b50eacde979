"""Runs the real handlers of functions/<name>/handler.py in this process, with a Lambda context carrying
the function's settings.

One invocation at a time in the whole process, not one per function: Powertools keeps per-invocation
state at process level, which is right in Lambda (one container runs one invocation) and wrong here,
where every function shares the process. `BaseRouter.current_event` is a class attribute, so a Stripe
webhook delivered while the API-keys function ran made it read the webhook's request context (no
authorizer: 401); Logger keys and Metrics are shared the same way. Nothing in the local stack waits for
another invocation from inside one (webhooks are delivered from their own thread), so this cannot
deadlock; it only makes the local API serve one request at a time."""

from __future__ import annotations

import importlib
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from billing_platform import resources
from billing_platform.resources import FunctionSpec

log = logging.getLogger("local_stack.runtime")


@dataclass
class LocalLambdaContext:
    """The attributes of Lambda's context object that Powertools and handlers read."""

    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    invoked_function_arn: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local/[$LATEST]local"
    function_version: str = "$LATEST"
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class FunctionRuntime:
    """Imports handlers lazily (after the environment is set) and invokes them."""

    def __init__(self, specs: tuple[FunctionSpec, ...] = resources.FUNCTIONS, *, region: str = "us-east-1") -> None:
        self._specs = {spec.name: spec for spec in specs}
        self._modules: dict[str, ModuleType] = {}
        self._invoke_lock = threading.RLock()
        self._import_lock = threading.Lock()
        self._region = region

    def spec(self, name: str) -> FunctionSpec:
        return self._specs[name]

    def module(self, name: str) -> ModuleType:
        with self._import_lock:
            if name not in self._modules:
                self._modules[name] = importlib.import_module(f"functions.{name}.handler")
            return self._modules[name]

    def import_all(self) -> dict[str, str]:
        """Import every handler now (the local stack's cold start). Returns name -> error for failures."""
        failures: dict[str, str] = {}
        for name in self._specs:
            try:
                self.module(name)
            except Exception as exc:  # a broken handler must not stop the other functions
                failures[name] = f"{type(exc).__name__}: {exc}"
                log.exception("could not import functions/%s/handler.py", name)
        return failures

    def context(self, name: str) -> LocalLambdaContext:
        spec = self._specs[name]
        return LocalLambdaContext(
            function_name=f"billing-local-{name}",
            memory_limit_in_mb=spec.memory_mb,
            timeout_seconds=spec.timeout_seconds,
            invoked_function_arn=f"arn:aws:lambda:{self._region}:000000000000:function:billing-local-{name}",
        )

    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        """Call the handler, alone in the process; exceptions propagate as Lambda reports a function error."""
        handler = self.module(name).handler
        with self._invoke_lock:
            return handler(event, self.context(name))
