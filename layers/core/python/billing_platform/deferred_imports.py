"""Third-party packages whose `__init__` imports every submodule they have, made to import each name on
first use instead (the way `billing_platform/__init__` serves its own names).

Importing any submodule of a package runs the package's `__init__` first. Two Powertools packages import
everything there: `aws_lambda_powertools.event_handler` every resolver (AppSync's pulls in asyncio, ssl
and selectors), `aws_lambda_powertools.utilities.data_classes` all ~40 event classes (CodePipeline's pulls
in zipfile). An API function uses one resolver and two event classes, yet paid for the rest at every cold
start (`make bench` prints where a cold import goes).

`defer_package_inits()` installs an import hook for those packages only. When one of them is first
imported, its module is created without running its `__init__`; its submodules import as usual, and a
name the `__init__` re-exports (`from aws_lambda_powertools.event_handler import Response`) imports the
one submodule that defines it. Anything else asked of the package runs the real `__init__` then, so
every name stays available. A package whose `__init__` does more than import names (and set `__all__`)
is left alone: deferring it could skip side effects.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any, cast

# Package -> what its __init__ imports that our functions do not use.
DEFERRED_PACKAGES = {
    "aws_lambda_powertools.event_handler": "every resolver; AppSync's imports asyncio",
    "aws_lambda_powertools.utilities.data_classes": "every event class; CodePipeline's imports zipfile",
}

# name -> (module, attribute) for each `from module import attribute as name` of an __init__
Exports = dict[str, tuple[str, str]]


def _exports(source: str, package: str) -> tuple[Exports, list[str] | None] | None:
    """name -> (module, attribute) for every `from ... import name` of an `__init__`, and its `__all__`;
    None when the `__init__` holds anything else (code that must run when the package is imported)."""
    names: Exports = {}
    exported: list[str] | None = None
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            module = node.module or ""
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{module}" if module else base
            for alias in node.names:
                if alias.name == "*":
                    return None
                if module == package and not alias.asname:
                    continue  # `from . import submodule`: served as a submodule on first use
                names[alias.asname or alias.name] = (module, alias.name)
        elif isinstance(node, ast.ImportFrom):
            continue  # from __future__ import ...
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue  # the docstring
        elif (
            isinstance(node, ast.Assign)
            and [getattr(target, "id", None) for target in node.targets] == ["__all__"]
            and isinstance(node.value, ast.List | ast.Tuple)
        ):
            exported = [str(name) for name in ast.literal_eval(node.value)]
        else:
            return None
    return names, exported


class _DeferredPackage(ModuleType):
    """A package module whose `__init__` has not run (yet)."""

    _deferred: tuple[Exports, Any]  # the names its __init__ re-exports, and its real loader

    def __getattr__(self, name: str) -> Any:
        exports, real = self._deferred
        if name in exports:
            source, attribute = exports[name]
            value = getattr(importlib.import_module(source), attribute)
        elif name.startswith("__"):
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        else:
            try:  # a submodule (`from package import submodule` probes the attribute first)
                value = importlib.import_module(f"{self.__name__}.{name}")
            except ModuleNotFoundError as missing:
                if missing.name != f"{self.__name__}.{name}":
                    raise
                # Neither a re-exported name nor a submodule: run the real __init__ now, then look again.
                self.__class__ = ModuleType  # type: ignore[assignment]
                real.exec_module(self)
                return getattr(self, name)
        setattr(self, name, value)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        # The import system binds each imported submodule on its package. Where the __init__ re-exports a
        # name of the same name from that submodule (`from .event_source import event_source`), the
        # package keeps the re-exported object, as the real __init__ leaves it.
        exports = self.__dict__.get("_deferred", ({}, None))[0]
        source = exports.get(name)
        if isinstance(value, ModuleType) and source is not None and source[0] == value.__name__:
            value = getattr(value, source[1])
        super().__setattr__(name, value)


class _DeferredInitLoader:
    """Creates the package module without executing its `__init__`; the real loader runs it on demand.
    (The loader and finder protocols are duck-typed: importing importlib.abc would cost a cold start.)"""

    def __init__(self, real: Any, exports: Exports, exported: list[str] | None):
        self.real = real
        self.exports = exports
        self.exported = exported

    def __getattr__(self, name: str) -> Any:
        # get_source, get_filename, get_resource_reader ... : the package's real loader answers.
        return getattr(self.real, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # the default module, with __path__ set from the spec

    def exec_module(self, module: ModuleType) -> None:
        module.__class__ = _DeferredPackage
        module.__dict__["_deferred"] = (self.exports, self.real)
        if self.exported is not None:
            module.__all__ = list(self.exported)  # type: ignore[attr-defined]


class _DeferredInitFinder:
    """Finds the deferred packages with the regular path finder and swaps in the deferring loader."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in DEFERRED_PACKAGES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or spec.submodule_search_locations is None:
            return spec
        get_source = getattr(spec.loader, "get_source", None)
        source = get_source(fullname) if get_source is not None else None
        found = _exports(source, fullname) if source else None
        if found is None:
            return spec  # an __init__ with code of its own (or no source): imported as usual
        spec.loader = cast(Any, _DeferredInitLoader(spec.loader, *found))
        return spec


def defer_package_inits() -> None:
    """Install the hook (once per process). Packages already imported stay as they are."""
    if not any(isinstance(finder, _DeferredInitFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _DeferredInitFinder())
