"""Startup hooks: optional pieces that join the local stack once the API is listening.

A hook module exposes `start(base_url: str, env: Mapping[str, str]) -> Callable[[], None] | None`; the
returned callable (if any) is called on shutdown, before the emulators stop. `env` is the environment
the functions run with (table names, queue URLs, endpoints, OPERATOR_TOKEN, STRIPE_WEBHOOK_SECRET …).

Wire a new piece by adding its module to HOOK_MODULES. A module that does not exist yet is skipped, so
`local_stack.billing` (the mock billing provider sending signed webhooks to /v1/webhooks/stripe) can land
on its own.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from typing import Protocol

log = logging.getLogger("local_stack.hooks")

HOOK_MODULES: tuple[str, ...] = ("local_stack.billing",)

Stop = Callable[[], None]


class StartHook(Protocol):
    def __call__(self, base_url: str, env: Mapping[str, str]) -> Stop | None: ...


def load_hooks(modules: tuple[str, ...] = HOOK_MODULES) -> list[tuple[str, StartHook]]:
    hooks: list[tuple[str, StartHook]] = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        start = getattr(module, "start", None)
        if start is None:
            log.warning("hook module %s has no start(base_url, env)", name)
            continue
        hooks.append((name, start))
    return hooks
