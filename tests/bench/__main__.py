"""`make bench`: runs every tests/bench/bench_*.py module's `main()` and prints its numbers."""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import time

# Benchmarks print numbers: the layer's per-request log lines and EMF blobs would bury them.
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

import tests.bench as package


def main() -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.name.startswith("bench_"))
    wanted = set(sys.argv[1:])
    for name in names:
        if wanted and name not in wanted:
            continue
        print(f"\n=== {name} ===", flush=True)
        started = time.perf_counter()
        importlib.import_module(f"tests.bench.{name}").main()
        print(f"--- {name} took {time.perf_counter() - started:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
