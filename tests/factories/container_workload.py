"""A handler for the local runtime's own tests: what each invocation does is in the event, so one module
can stand in for any function (`FunctionRuntime(modules={name: __name__})`) and show what a container is."""

from __future__ import annotations

import os
import time
from typing import Any

# Module state: one count per container, as Lambda keeps module globals between warm invocations.
_invocations = 0
_loaded_at = time.monotonic()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _invocations
    _invocations += 1
    action = event.get("action", "answer")
    if action == "sleep":
        time.sleep(float(event["seconds"]))
    elif action == "crash":
        os._exit(3)  # the process dies mid-invocation, as an out-of-memory kill would
    elif action == "raise":
        raise RuntimeError(str(event.get("message", "boom")))
    elif action == "env":
        return {"value": os.environ.get(str(event["name"]))}
    return {
        "pid": os.getpid(),
        "invocations": _invocations,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "function_name": context.function_name,
        "request_id": context.aws_request_id,
    }
