"""One local stack and one Chromium for every browser test of the pages (started once per package)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.factories.browser import chromium
from tests.factories.local_stack_process import stack_fixture

if TYPE_CHECKING:
    from playwright.sync_api import Browser


stack = stack_fixture("package")


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched
