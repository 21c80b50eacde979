"""`PerContainer`: what a Lambda container builds once (billing_platform.container)."""

from __future__ import annotations

from billing_platform.container import PerContainer


class Built:
    def __init__(self, basis: object) -> None:
        self.basis = basis


def test_built_lazily_once_and_again_only_when_its_dependency_changes() -> None:
    dependency = ["provider-a"]
    builds: list[Built] = []

    def build() -> Built:
        builds.append(Built(dependency[0]))
        return builds[-1]

    holder = PerContainer(build, depends_on=lambda: dependency[0])
    assert builds == []  # nothing at import time: a cold path that never asks pays nothing
    first = holder()
    assert holder() is first
    assert len(builds) == 1
    dependency[0] = "provider-b"
    second = holder()
    assert second is not first
    assert second.basis == "provider-b"
    assert holder() is second


def test_a_pinned_instance_is_served_whatever_the_dependency_until_reset() -> None:
    dependency = ["a"]
    holder = PerContainer(lambda: Built(dependency[0]), depends_on=lambda: dependency[0])
    pinned = Built("test")
    holder.use(pinned)
    dependency[0] = "b"
    assert holder() is pinned
    holder.reset()
    assert holder().basis == "b"
