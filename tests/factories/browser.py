"""Headless Debian Chromium driven by Playwright (its own browser download cannot work offline): one launch
per test module, and a page that records every console error, uncaught exception and request that leaves
the allowed origins, so a page that "loads" but is broken in a browser fails its test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page, Request

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium dials Google's hosts at start, which this offline
# machine refuses (noise in the console, and a page must not depend on them anyway).
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium; fails (never skips) where `make setup` has not installed it."""
    from playwright.sync_api import sync_playwright

    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: `make setup` installs Debian's chromium (apt-get, as root)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS), headless=True)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageProblems:
    """What went wrong in a page, as a browser's developer tools would show it."""

    allowed_origins: tuple[str, ...]
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} ({message.location})")

    def on_page_error(self, error: Exception) -> None:
        self.page_errors.append(str(error))

    def on_request(self, request: Request) -> None:
        if not request.url.startswith(self.allowed_origins):
            self.foreign_requests.append(request.url)

    def all(self) -> list[str]:
        return (
            [f"console: {e}" for e in self.console_errors]
            + [f"uncaught: {e}" for e in self.page_errors]
            + [f"offline page fetched: {u}" for u in self.foreign_requests]
        )


@contextmanager
def watched_page(
    browser: Browser, *allowed_origins: str, width: int = 1280, height: int = 900, bypass_csp: bool = False
) -> Iterator[tuple[Page, PageProblems]]:
    """A fresh page (own context: no storage shared between tests) with its problems recorded.
    `bypass_csp` only for tests that inject a checker script (axe-core) into a page whose policy forbids it."""
    context = browser.new_context(viewport={"width": width, "height": height}, bypass_csp=bypass_csp)
    page = context.new_page()
    problems = PageProblems(("data:", "about:", *allowed_origins))
    page.on("console", problems.on_console)
    page.on("pageerror", problems.on_page_error)
    page.on("request", problems.on_request)
    try:
        yield page, problems
    finally:
        context.close()
