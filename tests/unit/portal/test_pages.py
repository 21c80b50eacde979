"""The portal's pages as the portal function serves them: a strict Content-Security-Policy on every page
(no 'unsafe-inline', no eval, nothing from another origin), bundled assets only by exact name, and built
HTML that carries no inline script, style attribute or event-handler attribute a strict CSP would block."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from billing_platform.portal.pages import PAGES, StaticPages

STATIC = Path(__file__).resolve().parents[3] / "functions" / "portal" / "static"


@pytest.fixture(scope="module")
def pages() -> StaticPages:
    if not (STATIC / "portal.html").is_file():
        pytest.fail(f"{STATIC} is not built: `make setup` (or `make web`) bundles the pages")
    return StaticPages(STATIC)


class _InlineFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.problems.append("inline <script>")
        if tag == "style":
            self.problems.append("inline <style>")
        self.problems += [f"{tag}[{name}]" for name in names if name == "style" or name.startswith("on")]
        for name, value in attrs:
            if name in {"src", "href"} and value and re.match(r"^(https?:)?//", value):
                self.problems.append(f"{tag} loads {value} from another origin")


@pytest.mark.parametrize("path", sorted(p for p, name in PAGES.items() if (STATIC / name).is_file()))
def test_each_page_is_served_with_a_strict_policy_and_no_inline_code(pages: StaticPages, path: str) -> None:
    response = pages.page(path)
    assert response["statusCode"] == 200
    headers = response["headers"]
    csp = headers["Content-Security-Policy"]
    for directive in ("default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'"):
        assert directive in csp
    for loophole in ("unsafe-inline", "unsafe-eval", "http", "*"):
        assert loophole not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Type"].startswith("text/html")
    finder = _InlineFinder()
    finder.feed(response["body"])
    assert finder.problems == []


def test_assets_are_served_by_exact_name_and_nothing_else(pages: StaticPages) -> None:
    script = pages.asset("portal.js")
    assert script["statusCode"] == 200
    assert script["headers"]["Content-Type"].startswith("text/javascript")
    assert "innerHTML" not in script["body"]
    assert "eval(" not in script["body"]
    assert pages.asset("portal.css")["headers"]["Content-Type"].startswith("text/css")
    for name in ("../handler.py", "..%2Fhandler.py", ".built", "portal.html", "PORTAL.JS", "x.js", "handler.py"):
        assert pages.asset(name)["statusCode"] == 404, name
    assert pages.page("/elsewhere")["statusCode"] == 404


def test_a_missing_bundle_is_said_plainly(tmp_path: Path) -> None:
    answer = StaticPages(tmp_path / "never-built").page("/portal")
    assert answer["statusCode"] == 500
    assert "make setup" in answer["body"]
