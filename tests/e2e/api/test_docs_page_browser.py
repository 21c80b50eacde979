"""The page the README and the `make dev` banner send people to, opened as they open it: /docs in headless
Chromium against the local stack. It must render every operation and schema of the OpenAPI document with
no console error and no request leaving the local stack (offline), and "Try it out" must reach the local
API with the bearer token typed into "Authorize". A 200 with HTML is not enough: a blank page gives that."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.factories.browser import PageProblems, chromium, watched_page
from tests.factories.local_stack_process import LocalStackProcess

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.xdist_group("local_stack_docs")]

RENDER_TIMEOUT_MS = 60_000  # the 1.4 MB Swagger UI bundle on a busy 2-core runner
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
ENTITLEMENTS_PATH = "/v1/tenants/{tenant_id}/entitlements"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def document(stack: LocalStackProcess) -> dict[str, Any]:
    status, body = stack.request("GET", "/openapi.json")
    assert status == 200, body
    return dict(body)


def operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [(method, path) for path, item in document["paths"].items() for method in item if method in HTTP_METHODS]


def operation_block(page: Page, method: str, path: str) -> Locator:
    summary = page.locator(f'.opblock-summary-path[data-path="{path}"]')
    return page.locator(f".opblock.opblock-{method}", has=summary)


def open_docs(page: Page, stack: LocalStackProcess, problems: PageProblems) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(f"{stack.banner.base_url}/docs")
    try:
        page.wait_for_selector(".opblock", timeout=RENDER_TIMEOUT_MS)
    except PlaywrightTimeout:
        pytest.fail(f"no operation rendered; the page shows {page.inner_text('body')[:200]!r}; {problems.all()}")


def test_docs_page_renders_every_operation_and_schema_without_errors(
    stack: LocalStackProcess, browser: Browser, document: dict[str, Any], tmp_path: Path
) -> None:
    expected = operations(document)
    assert len(expected) >= 19, expected  # the platform's routes, not an empty document
    with watched_page(browser, stack.banner.base_url) as (page, problems):
        open_docs(page, stack, problems)
        page.screenshot(path=str(tmp_path / "docs.png"), full_page=True)

        missing = [f"{m.upper()} {p}" for m, p in expected if operation_block(page, m, p).count() != 1]
        assert not missing, f"operations not rendered: {missing}"
        assert page.locator(".opblock").count() == len(expected)

        shown = set(page.locator("section.models .json-schema-2020-12__title").all_inner_texts())
        assert set(document["components"]["schemas"]) <= shown, sorted(set(document["components"]["schemas"]) - shown)
        assert page.locator(".info .title").inner_text().startswith(document["info"]["title"])
        # The page links its spec as /docs?format=json: that link answers with the same document.
        link = page.locator(".info .link").first.get_attribute("href")
        assert page.request.get(f"{stack.banner.base_url}{link}").json() == document
        assert problems.all() == []


def test_try_it_out_reaches_the_local_api_with_the_authorized_bearer_token(
    stack: LocalStackProcess, browser: Browser
) -> None:
    tenant = f"t_docs_{int(time.time() * 1000)}"
    status, customer = stack.request("POST", "/v1/customers", {"tenant_id": tenant, "email": "docs@example.com"})
    assert status == 201, customer
    status, key = stack.request("POST", f"/v1/tenants/{tenant}/api-keys", {"name": "docs page"})
    assert status == 201, key

    with watched_page(browser, stack.banner.base_url) as (page, problems):
        open_docs(page, stack, problems)
        block = operation_block(page, "get", ENTITLEMENTS_PATH)
        block.locator(".opblock-summary-control").click()
        block.locator("button.try-out__btn").click()
        block.locator('input[placeholder="tenant_id"]').fill(tenant)

        def execute() -> tuple[str, str]:
            block.locator("button.execute").click()
            status_cell = block.locator(".live-responses-table tr.response .response-col_status").first
            status_cell.wait_for(timeout=RENDER_TIMEOUT_MS)
            body = block.locator(".live-responses-table tr.response .response-col_description pre").first.inner_text()
            code = status_cell.inner_text().strip()
            block.locator("button.btn-clear").click()  # so the next answer is not the previous one
            return code, body

        # Not yet authorized: the local authorizer refuses, as API Gateway's would.
        code, body = execute()
        assert code == "401", body
        # The browser logs the refused call itself; that one line, and nothing else, is expected.
        (refused,) = problems.console_errors
        assert "status of 401" in refused
        assert f"/v1/tenants/{tenant}/entitlements" in refused
        problems.console_errors.clear()

        page.click(".auth-wrapper button.authorize")
        page.fill("#auth-bearer-value", key["secret"])
        page.click('.auth-btn-wrapper button[aria-label="Apply credentials"]')
        page.click(".auth-btn-wrapper button.btn-done")

        code, body = execute()
        assert code == "200", body
        assert f'"tenant_id": "{tenant}"' in body
        assert problems.all() == []
