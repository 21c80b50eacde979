"""How the library's async faces run blocking work (boto3, the stripe SDK) without blocking the event loop.

Every awaitable method of the four library objects (billing provider, `EntitlementEnforcer`,
`UsageTracker`, `UsageAggregator`) is the blocking method of its `.sync` face run through `run_blocking`:
one implementation of each call, two ways to call it.

The work runs on one bounded thread pool owned by the library rather than the loop's default executor:
the application's own `run_in_executor` / `to_thread` calls do not queue behind billing calls (nor the
reverse), and the pool is as large as botocore's connection pool (`max_pool_connections`, 10), so more
threads would only wait for a connection. Context variables (Powertools' logger keys, the caller's
contextvars) are carried into the worker, as `asyncio.to_thread` does.

Cancelling the awaiting task does not cancel the request already sent: a consume that was on the wire
may still be applied. Callers that retry after a cancellation pass an idempotency key.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from billing_platform.container import PerContainer

P = ParamSpec("P")
R = TypeVar("R")

# botocore's default max_pool_connections: the number of requests one client can have in flight.
MAX_WORKERS = 10

# The library's worker pool, created on first use (a Lambda using only blocking faces never starts it).
executor = PerContainer(lambda: ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="billing-platform"))


async def run_blocking(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Run `fn(*args, **kwargs)` on the library's worker pool and await its result."""
    # Imported here: a caller awaiting this already runs an event loop, so asyncio is loaded; the Lambda
    # handlers only use the blocking faces and do not pay for importing it at cold start.
    import asyncio

    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await loop.run_in_executor(executor(), call)
