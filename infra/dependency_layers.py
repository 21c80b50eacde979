"""Builds the Lambda dependency layers with pip for the Lambda platform: no Docker, reproducible.

`build/layers/<name>/python` is filled by
`pip install --platform manylinux2014_x86_64 --implementation cp --python-version <runtime>
--only-binary=:all: --target ... -r layers/deps/<name>.txt`. Only wheels are accepted, so nothing is
compiled on the build machine and the result does not depend on it. A stamp file holds the hash of the
requirements file plus the target platform; a build whose stamp matches is skipped.

`python -m infra.dependency_layers` builds every layer and prints its time and unzipped size.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from billing_platform.resources import DependencyLayer

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS_DIR = ROOT / "layers" / "deps"
BUILD_DIR = ROOT / "build" / "layers"

# One Python version for the Lambda runtime and the wheels in the layers: compiled wheels
# (pydantic_core, wrapt) only load on the CPython they were built for. 3.13, not the latest (3.14): it is
# the newest CPython the build machines have (pyenv's python3.13; Debian 12 has no newer one and nothing
# downloads one), so CI imports and invokes every handler on it from these layers (`make lambda-python`).
# cdk-nag's AwsSolutions-L1 (latest runtime) is acknowledged with that reason (infra/constructs/functions.py).
LAMBDA_PYTHON_VERSION = "3.13"
PLATFORM = "manylinux2014_x86_64"
STAMP_NAME = ".requirements.sha256"
LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024


@dataclass(frozen=True)
class LayerBuild:
    layer: DependencyLayer
    path: Path  # the layer's asset root; Lambda mounts its python/ folder at /opt/python
    built: bool  # False when the stamp matched and pip was skipped
    seconds: float
    size_bytes: int


def requirements_file(layer: DependencyLayer) -> Path:
    return REQUIREMENTS_DIR / f"{layer.value}.txt"


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_versions(requirements: Path) -> dict[str, str]:
    """`name==version` lines of a requirements file (extras dropped), by normalized name. Anything else
    than an exact pin is refused: the layer must be the same bytes on every machine."""
    pins: dict[str, str] = {}
    for number, raw in enumerate(requirements.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        found = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;]+)", line)
        if found is None:
            raise ValueError(f"{requirements.name}:{number}: not an exact pin (name==version): {line!r}")
        pins[_normalize(found.group(1))] = found.group(3)
    return pins


def installed_versions(site: Path) -> dict[str, str]:
    """Distributions pip put in `site`, from their `<name>-<version>.dist-info` folders."""
    installed: dict[str, str] = {}
    for info in site.glob("*.dist-info"):
        name, _, version = info.name.removesuffix(".dist-info").partition("-")
        installed[_normalize(name)] = version
    return installed


def check_pins(requirements: Path, site: Path) -> None:
    """Every installed distribution is pinned at the version installed. pip resolves dependencies, so a
    new transitive dependency of an upgraded package would otherwise slip in unpinned."""
    pins = pinned_versions(requirements)
    installed = installed_versions(site)
    unpinned = sorted(set(installed) - set(pins))
    drifted = sorted(
        f"{n} {installed[n]} (pinned {pins[n]})" for n in installed if n in pins and installed[n] != pins[n]
    )
    if unpinned or drifted:
        raise RuntimeError(
            f"{requirements.name}: pin every package the layer contains; unpinned: {unpinned or '-'}; "
            f"other version than pinned: {drifted or '-'}"
        )


def layer_dir(layer: DependencyLayer, build_dir: Path = BUILD_DIR) -> Path:
    return build_dir / layer.value


def fingerprint(layer: DependencyLayer) -> str:
    """What the built layer depends on: the pinned requirements and the target platform."""
    digest = hashlib.sha256()
    digest.update(requirements_file(layer).read_bytes())
    digest.update(f"\n{PLATFORM} cp{LAMBDA_PYTHON_VERSION}".encode())
    return digest.hexdigest()


def is_current(layer: DependencyLayer, build_dir: Path = BUILD_DIR) -> bool:
    stamp = layer_dir(layer, build_dir) / STAMP_NAME
    return stamp.is_file() and stamp.read_text().strip() == fingerprint(layer)


def directory_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def pip_command(layer: DependencyLayer, target: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",  # Lambda writes no .pyc to /opt; compiled files for 3.11 would be dead weight
        "--platform",
        PLATFORM,
        "--implementation",
        "cp",
        "--python-version",
        LAMBDA_PYTHON_VERSION,
        "--only-binary=:all:",
        "--target",
        str(target),
        "-r",
        str(requirements_file(layer)),
    ]


def build_layer(layer: DependencyLayer, build_dir: Path = BUILD_DIR, *, force: bool = False) -> LayerBuild:
    """Build one layer unless its stamp matches. Builds into a temporary folder and swaps it in, so an
    interrupted build never leaves a half-filled layer with a valid stamp."""
    root = layer_dir(layer, build_dir)
    started = time.perf_counter()
    if not force and is_current(layer, build_dir):
        return LayerBuild(layer, root, False, time.perf_counter() - started, directory_size(root / "python"))
    staging = root.with_name(f".{root.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "python").mkdir(parents=True)
    subprocess.run(pip_command(layer, staging / "python"), check=True)  # noqa: S603 - fixed argv, no shell
    check_pins(requirements_file(layer), staging / "python")
    # Console scripts and bytecode are of no use under /opt/python.
    shutil.rmtree(staging / "python" / "bin", ignore_errors=True)
    for junk in (staging / "python").rglob("__pycache__"):
        shutil.rmtree(junk, ignore_errors=True)
    size = directory_size(staging / "python")
    if size > LAMBDA_UNZIPPED_LIMIT_BYTES:
        raise RuntimeError(f"layer {layer.value} is {size / 1e6:.1f} MB unzipped, over Lambda's 250 MB limit")
    (staging / STAMP_NAME).write_text(fingerprint(layer) + "\n")
    shutil.rmtree(root, ignore_errors=True)
    staging.rename(root)
    return LayerBuild(layer, root, True, time.perf_counter() - started, size)


def ensure_built(build_dir: Path = BUILD_DIR) -> dict[DependencyLayer, Path]:
    """Every dependency layer, built when missing or stale. Called by the CDK app at synth time."""
    return {layer: build_layer(layer, build_dir).path for layer in DependencyLayer}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    force = "--force" in args
    build_dir = Path(os.environ.get("LAYER_BUILD_DIR", BUILD_DIR))
    total = 0
    for layer in DependencyLayer:
        result = build_layer(layer, build_dir, force=force)
        total += result.size_bytes
        state = "built" if result.built else "up to date"
        print(
            f"layer {layer.value:<7} {state:<10} {result.seconds:6.1f} s  {result.size_bytes / 1e6:6.1f} MB unzipped"
            f"  ({result.size_bytes / LAMBDA_UNZIPPED_LIMIT_BYTES:.0%} of Lambda's 250 MB)"
        )
    print(f"all layers {total / 1e6:.1f} MB unzipped ({total / LAMBDA_UNZIPPED_LIMIT_BYTES:.0%} of 250 MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
