"""The dependency layers are reproducible: exact pins only, every installed package pinned, the same pins as
the dev environment (constraints.txt), rebuilt only when the requirements change. pip itself is faked here;
`python -m infra.dependency_layers` runs the real one."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from billing_platform.resources import DependencyLayer
from infra import dependency_layers as dl

pytestmark = [pytest.mark.infra]

ROOT = Path(__file__).resolve().parents[3]


def _constraints() -> dict[str, str]:
    return dl.pinned_versions(ROOT / "constraints.txt")


@pytest.mark.parametrize("layer", list(DependencyLayer), ids=lambda layer: layer.value)
def test_requirements_are_exact_pins_matching_the_dev_environment(layer: DependencyLayer) -> None:
    pins = dl.pinned_versions(dl.requirements_file(layer))
    constraints = _constraints()
    assert pins
    for name, version in pins.items():
        assert constraints.get(name) == version, (
            f"{name}: layer pins {version}, constraints.txt {constraints.get(name)}"
        )


def test_packages_in_two_layers_have_the_same_pin() -> None:
    # CDK sorts a function's layers, so two layers holding different versions of a package would make
    # the winner arbitrary.
    seen: dict[str, tuple[str, DependencyLayer]] = {}
    for layer in DependencyLayer:
        for name, version in dl.pinned_versions(dl.requirements_file(layer)).items():
            if name in seen:
                assert seen[name][0] == version, f"{name}: {seen[name]} vs {version} in {layer.value}"
            seen[name] = (version, layer)


def test_a_range_is_refused(tmp_path: Path) -> None:
    requirements = tmp_path / "r.txt"
    requirements.write_text("# comment\nstripe>=16\n")
    with pytest.raises(ValueError, match=r"r\.txt:2: not an exact pin"):
        dl.pinned_versions(requirements)


def test_extras_and_comments_are_understood(tmp_path: Path) -> None:
    requirements = tmp_path / "r.txt"
    requirements.write_text("aws-lambda-powertools[tracer]==3.37.0  # why\n\nTyping_Extensions==4.16.0\n")
    assert dl.pinned_versions(requirements) == {"aws-lambda-powertools": "3.37.0", "typing-extensions": "4.16.0"}


def _site(tmp_path: Path, *dists: str) -> Path:
    site = tmp_path / "site"
    for dist in dists:
        (site / f"{dist}.dist-info").mkdir(parents=True)
    return site


def test_an_unpinned_transitive_dependency_fails_the_build(tmp_path: Path) -> None:
    requirements = tmp_path / "r.txt"
    requirements.write_text("stripe==16.1.0\n")
    with pytest.raises(RuntimeError, match=r"unpinned: \['requests'\]"):
        dl.check_pins(requirements, _site(tmp_path, "stripe-16.1.0", "requests-2.34.2"))


def test_a_version_other_than_the_pin_fails_the_build(tmp_path: Path) -> None:
    requirements = tmp_path / "r.txt"
    requirements.write_text("python-dateutil==2.9.0.post0\n")
    dl.check_pins(requirements, _site(tmp_path / "ok", "python_dateutil-2.9.0.post0"))
    with pytest.raises(RuntimeError, match=r"python-dateutil 2\.8\.0"):
        dl.check_pins(requirements, _site(tmp_path / "bad", "python_dateutil-2.8.0"))


def test_pip_targets_the_lambda_platform_with_wheels_only(tmp_path: Path) -> None:
    command = dl.pip_command(DependencyLayer.CORE, tmp_path)
    joined = " ".join(command)
    assert f"--platform {dl.PLATFORM}" in joined
    assert f"--python-version {dl.LAMBDA_PYTHON_VERSION}" in joined
    assert "--only-binary=:all:" in command
    assert f"-r {dl.requirements_file(DependencyLayer.CORE)}" in joined


class FakePip:
    """Stands in for `pip install --target`: writes one module and the dist-info of each pin."""

    def __init__(self) -> None:
        self.runs = 0

    def __call__(self, command: list[str], check: bool) -> subprocess.CompletedProcess[bytes]:
        self.runs += 1
        target = Path(command[command.index("--target") + 1])
        requirements = Path(command[command.index("-r") + 1])
        for name, version in dl.pinned_versions(requirements).items():
            (target / f"{name.replace('-', '_')}-{version}.dist-info").mkdir()
        (target / "module.py").write_text("VALUE = 1\n")
        (target / "__pycache__").mkdir()
        (target / "__pycache__" / "module.cpython-311.pyc").write_bytes(b"stale")
        return subprocess.CompletedProcess(command, 0)


def test_a_layer_is_built_once_and_rebuilt_when_its_requirements_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requirements = tmp_path / "deps"
    requirements.mkdir()
    (requirements / "core.txt").write_text("six==1.17.0\n")
    monkeypatch.setattr(dl, "REQUIREMENTS_DIR", requirements)
    pip = FakePip()
    monkeypatch.setattr("infra.dependency_layers.subprocess.run", pip)
    build = tmp_path / "build"

    first = dl.build_layer(DependencyLayer.CORE, build)
    assert first.built
    assert (first.path / "python" / "module.py").is_file()
    assert not list(first.path.rglob("__pycache__")), "bytecode of the build machine must not ship"
    assert dl.is_current(DependencyLayer.CORE, build)

    again = dl.build_layer(DependencyLayer.CORE, build)
    assert not again.built
    assert pip.runs == 1

    (requirements / "core.txt").write_text("six==1.17.0\n# a new comment still changes the fingerprint\n")
    assert not dl.is_current(DependencyLayer.CORE, build)
    assert dl.build_layer(DependencyLayer.CORE, build).built
    assert pip.runs == 2


def test_a_failed_build_leaves_no_valid_stamp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    requirements = tmp_path / "deps"
    requirements.mkdir()
    (requirements / "core.txt").write_text("six==1.17.0\n")
    monkeypatch.setattr(dl, "REQUIREMENTS_DIR", requirements)

    def failing_pip(command: list[str], check: bool) -> Any:
        raise subprocess.CalledProcessError(1, command)

    monkeypatch.setattr("infra.dependency_layers.subprocess.run", failing_pip)
    with pytest.raises(subprocess.CalledProcessError):
        dl.build_layer(DependencyLayer.CORE, tmp_path / "build")
    assert not dl.is_current(DependencyLayer.CORE, tmp_path / "build")
