"""Loading the real Lambda entry points under functions/."""

from __future__ import annotations

import importlib
from types import ModuleType


def load_handler(function_name: str) -> ModuleType:
    """Import `functions/<name>/handler.py` afresh, after the test set its environment, so module-level
    settings and clients are those of the test."""
    module = importlib.import_module(f"functions.{function_name}.handler")
    return importlib.reload(module)
