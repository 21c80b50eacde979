"""Where the layer's own log records go.

Layer modules log to standard loggers named after themselves (``logging.getLogger(__name__)``), the
`billing_platform` hierarchy, as a library should:

- Outside Lambda (no `AWS_LAMBDA_FUNCTION_NAME`: an asyncio or FastAPI service, a script, the CLI) the
  `billing_platform` logger has only a NullHandler and no level of its own: nothing is printed unless the
  host configures logging, and then its handlers, format and levels apply (each record keeps its `extra`
  keys). A library must not write to its host's stdout.
- Inside Lambda the records go through the handler of the process's Powertools Logger
  (`observability.logger`, built when the package is imported): one JSON line each, with the service,
  correlation id and tenant id the handlers set, as the functions have always logged. The same happens
  wherever `observability` is imported (handlers run by tests or the local stack).

The service name is `POWERTOOLS_SERVICE_NAME`, else "billing": never Powertools' "service_undefined".
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger

LIBRARY_LOGGER = "billing_platform"
DEFAULT_SERVICE = "billing"


def in_lambda(environ: Mapping[str, str] | None = None) -> bool:
    """The Lambda runtime sets AWS_LAMBDA_FUNCTION_NAME in every function's environment."""
    env = os.environ if environ is None else environ
    return bool(env.get("AWS_LAMBDA_FUNCTION_NAME"))


def service_name(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE


class _ThroughPowertools(logging.Handler):
    """Hands the library's records to a Powertools Logger's handler, at that logger's level (which its
    owner may change at any time: `setLevel`, debug sampling)."""

    def __init__(self, target: Logger) -> None:
        super().__init__()
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= (self.target.log_level or logging.INFO):
            self.target.registered_handler.handle(record)


def route_to(structured: Logger) -> None:
    """Send the `billing_platform` records through `structured` (observability calls this once)."""
    library = logging.getLogger(LIBRARY_LOGGER)
    for handler in list(library.handlers):
        if isinstance(handler, _ThroughPowertools):
            library.removeHandler(handler)
    library.addHandler(_ThroughPowertools(structured))
    library.setLevel(logging.DEBUG)  # the Powertools logger's level decides, in the handler above
    library.propagate = False  # Lambda's root handler would print each record a second time


def configure() -> None:
    """Called when the package is imported: a NullHandler always (inside Lambda the package then imports
    `observability`, which routes the records through its Logger)."""
    library = logging.getLogger(LIBRARY_LOGGER)
    if not any(isinstance(h, logging.NullHandler) for h in library.handlers):
        library.addHandler(logging.NullHandler())
