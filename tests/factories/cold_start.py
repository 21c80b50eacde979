"""A function's handler imported as Lambda imports it: in a fresh interpreter, with the function's code
folder on the path and the environment the stack gives it (plus the variables the Lambda runtime sets).
Used by the import deny-list test (which modules a cold start loads) and by `bench_cold_start` (how long
it takes, against a bare boto3 function in the same run)."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from billing_platform import resources
from billing_platform.resources import FunctionSpec
from infra.dependency_layers import LAMBDA_PYTHON_VERSION, is_current, layer_dir

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS_DIR = ROOT / "functions"
LAYER_DIR = ROOT / "layers" / "core" / "python"

# What a bare boto3 function imports and builds at cold start: the yardstick of every handler's import.
BARE_BOTO3_IMPORT = 'import boto3; client = boto3.client("dynamodb")'


def stack_environment(spec: FunctionSpec, *, xray_sdk: bool = False) -> dict[str, str]:
    """The deployed function's environment (infra/constructs/functions.py: the shared Powertools settings,
    table names, queue URLs, secret ARNs; `xray_sdk` as the CDK context of that name) and what the Lambda
    runtime adds, with placeholder values. PATH and HOME come from this process; nothing else does."""
    keep = ("PATH", "HOME", "LANG", "SYSTEMROOT", "TMPDIR")
    env = {key: os.environ[key] for key in keep if key in os.environ}
    env.update(
        {
            # What the Lambda runtime sets (Powertools decides "am I in Lambda" from LAMBDA_TASK_ROOT).
            "LAMBDA_TASK_ROOT": str(FUNCTIONS_DIR / spec.name),
            "AWS_LAMBDA_FUNCTION_NAME": f"BillingPlatform-{spec.name}",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.14",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_SESSION_TOKEN": "local",
            "AWS_EC2_METADATA_DISABLED": "true",
            "ENVIRONMENT": "production",
            **resources.FUNCTION_ENVIRONMENT,
        }
    )
    for table in dict.fromkeys((*spec.reads, *spec.writes)):
        env[table.env_var] = f"BillingPlatform-{table.local_name}"
    for queue in spec.sends_to:
        env[queue.env_var] = f"https://sqs.us-east-1.amazonaws.com/123456789012/{queue.local_name}"
    if spec.needs_stripe_secrets:
        for var in (resources.STRIPE_API_KEY_SECRET_ENV, resources.STRIPE_WEBHOOK_SECRET_ENV):
            env[var] = f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{var.lower()}"
    env.update(spec.extra_env)
    if xray_sdk:
        del env[resources.TRACE_DISABLED_ENV]
    return env


def run_fresh(spec: FunctionSpec, code: str, *, xray_sdk: bool = False, environ: Mapping[str, str] = {}) -> str:
    """Run `code` in a new interpreter that sees the function as Lambda does: its folder first on
    sys.path (`handler.handler`), then the layer; `environ` on top of the stack environment (a local
    endpoint, real table names). Returns the last line of stdout."""
    env = {**stack_environment(spec, xray_sdk=xray_sdk), **environ}
    env["PYTHONPATH"] = os.pathsep.join((str(FUNCTIONS_DIR / spec.name), str(LAYER_DIR)))
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=FUNCTIONS_DIR / spec.name,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{spec.name}: {code!r} failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


@dataclass(frozen=True)
class Footprint:
    """What importing a handler module left behind in a fresh interpreter."""

    modules: frozenset[str]  # loaded by the import (not by the interpreter's start-up)
    clients_created: list[str]  # billing_platform.clients factories already called


_FOOTPRINT = """
import json, sys
before = set(sys.modules)  # the interpreter's own start-up (site, .pth hooks) is not the handler's
import handler
modules = sorted(set(sys.modules) - before)
clients = sys.modules.get("billing_platform.clients")
factories = ("dynamodb", "dynamodb_streams", "sqs", "secretsmanager", "apigateway")
created = [n for n in factories if clients is not None and getattr(clients, n).cache_info().currsize]
print(json.dumps({"modules": modules, "clients": created}))
"""


def cold_import_footprint(spec: FunctionSpec, *, xray_sdk: bool = False) -> Footprint:
    """Import the function's handler module as a cold Lambda container does and report what it loaded."""
    answer = json.loads(run_fresh(spec, _FOOTPRINT, xray_sdk=xray_sdk))
    return Footprint(frozenset(answer["modules"]), answer["clients"])


def import_seconds(
    spec: FunctionSpec, statement: str = "import handler", environ: Mapping[str, str] = {}
) -> tuple[float, float]:
    """(wall, CPU) seconds of `statement` (by default the handler module's import) in a fresh interpreter.
    CPU time is what the import costs; wall time adds whatever else the machine was doing meanwhile."""
    code = (
        "import time\n_w, _c = time.perf_counter(), time.process_time()\n"
        f"{statement}\nprint(time.perf_counter() - _w, time.process_time() - _c)"
    )
    wall, cpu = run_fresh(spec, code, environ=environ).split()
    return float(wall), float(cpu)


def import_self_seconds(spec: FunctionSpec, statement: str = "import handler") -> dict[str, float]:
    """Seconds each module's own import took (`python -X importtime`, self time, children excluded) when
    `statement` runs in a fresh interpreter: where a cold start goes, module by module."""
    env = {**stack_environment(spec), "PYTHONPATH": os.pathsep.join((str(FUNCTIONS_DIR / spec.name), str(LAYER_DIR)))}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        env=env,
        cwd=FUNCTIONS_DIR / spec.name,
        capture_output=True,
        text=True,
        check=True,
    )
    found: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and not line.startswith("import time: self"):
            self_us, _cumulative, module = line.removeprefix("import time:").split("|")
            found[module.strip()] = int(self_us) / 1e6
    return found


Job = tuple[str, FunctionSpec, str, Mapping[str, str]]  # label, function, statement, extra environment


def medians(jobs: Sequence[Job], repeats: int) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds per job label. Rounds interleave the jobs, so load on a shared machine
    falls on all of them alike."""
    walls: dict[str, list[float]] = {label: [] for label, *_ in jobs}
    cpus: dict[str, list[float]] = {label: [] for label, *_ in jobs}
    for _ in range(repeats):
        for label, spec, statement, environ in jobs:
            wall, cpu = import_seconds(spec, statement, environ)
            walls[label].append(wall)
            cpus[label].append(cpu)
    return {label: (statistics.median(walls[label]), statistics.median(cpus[label])) for label in walls}


def lambda_python() -> str:
    """The interpreter of Lambda's runtime version: `python3.<minor>` on PATH, else pyenv's install."""
    name = f"python{LAMBDA_PYTHON_VERSION}"
    candidates = [shutil.which(name)]
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates += sorted(str(p) for p in Path(pyenv_root).glob(f"versions/{LAMBDA_PYTHON_VERSION}.*/bin/{name}"))
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-I", "-S", "-c", "import sys; print(sys.executable)"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0:
            return probe.stdout.strip()
    raise AssertionError(f"no {name} found (PATH, {pyenv_root}/versions): the Lambda runtime cannot be checked")


def built_layer_path(spec: FunctionSpec) -> list[str] | None:
    """What Lambda puts on sys.path after the function folder: the built dependency layers' python/
    folders, then the core library layer. None when a layer is not built for Lambda's Python."""
    if not all(is_current(layer) for layer in spec.dependency_layers):
        return None
    return [*(str(layer_dir(layer) / "python") for layer in spec.dependency_layers), str(LAYER_DIR)]


def lambda_import_cpu_seconds(python: str, spec: FunctionSpec, statement: str = "import handler") -> float:
    """CPU seconds of `statement` as Lambda runs it: Lambda's Python with `-I -S` (no site-packages, no
    PYTHON* variables), sys.path = the function folder + `built_layer_path`, the stack's environment."""
    layers = built_layer_path(spec)
    assert layers is not None, "build the layers first: make layers"
    path = [str(FUNCTIONS_DIR / spec.name), *layers]
    code = (
        f"import sys; sys.path[:0] = {path!r}\nimport time\n_c = time.process_time()\n"
        f"{statement}\nprint(time.process_time() - _c)"
    )
    done = subprocess.run(
        [python, "-I", "-S", "-c", code],
        env=stack_environment(spec),
        cwd=FUNCTIONS_DIR / spec.name,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{spec.name}: {statement!r} failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.split()[-1])
