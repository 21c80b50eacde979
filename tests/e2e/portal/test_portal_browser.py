"""The tenant portal opened as a tenant's customer opens it: `/portal#tenant=...&token=...` in headless
Chromium against the local stack, for a tenant seeded with grants (one with a hostile reason), an event,
open reservations and usage. Every figure the page shows must equal the API's answer for the same token;
a refused token must show the sign-in message and read nothing; no console error, no request leaving the
stack, no serious accessibility violation (axe-core), readable at 360 and 1280 px. Screenshots are kept
under artifacts/screenshots (CI uploads the folder)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.factories.browser import PageProblems, watched_page
from tests.factories.local_stack_process import ROOT, LocalStackProcess, eventually
from tests.factories.portal import HOSTILE, SeededTenant, mint_portal_token, seed_portal_tenant

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Request

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.xdist_group("local_stack_portal")]

SCREENSHOTS = ROOT / "artifacts" / "screenshots"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
READY_TIMEOUT_MS = 30_000
AGGREGATION_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def seeded(stack: LocalStackProcess) -> SeededTenant:
    tenant = seed_portal_tenant(stack.request, f"t_portal{str(int(time.time() * 1000))[-8:]}")
    # The usage records reach the day aggregates through queue, consumer, stream and aggregator.
    eventually(
        lambda: ((body := api(stack, tenant, "usage?resource_type=api_calls&days=30"))["total"] == "450", body),
        AGGREGATION_TIMEOUT,
    )
    return tenant


@pytest.fixture(scope="module")
def short_lived(stack: LocalStackProcess, seeded: SeededTenant) -> dict[str, Any]:
    """A token of the seeded tenant that lives one minute, never used before it expires (a cached
    authorizer answer would outlive it by up to the cache's 60 s, as API Gateway's does)."""
    return mint_portal_token(stack.request, seeded.tenant_id, ttl_seconds=60)


def api(stack: LocalStackProcess, tenant: SeededTenant, path: str) -> Any:
    status, body = stack.request("GET", f"/v1/tenants/{tenant.tenant_id}/{path}", token=tenant.portal_token)
    assert status == 200, body
    return body


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def open_portal(page: Page, stack: LocalStackProcess, tenant_id: str, token: str) -> str:
    page.goto(f"{stack.banner.base_url}/portal#tenant={tenant_id}&token={token}")
    page.wait_for_selector("body[data-state]", state="attached", timeout=READY_TIMEOUT_MS)
    return str(page.locator("body").get_attribute("data-state"))


def shown(page: Page, selector: str) -> str | None:
    """The exact API string behind a figure (data-value), after checking the visible text says the same."""
    node = page.locator(selector)
    value = node.get_attribute("data-value")
    assert node.inner_text().replace(",", "") == value, selector
    return value


def test_the_portal_shows_exactly_what_the_api_answers(
    stack: LocalStackProcess, browser: Browser, seeded: SeededTenant
) -> None:
    with watched_page(browser, stack.banner.base_url) as (page, problems):
        assert open_portal(page, stack, seeded.tenant_id, seeded.portal_token) == "ready", problems.all()
        page.locator("#usage-chart table tbody tr").first.wait_for(state="attached")
        screenshot(page, "portal-1280")
        entitlements = api(stack, seeded, "entitlements")
        reservations = api(stack, seeded, "reservations")
        events = api(stack, seeded, "events?limit=20")
        usage = api(stack, seeded, "usage?resource_type=api_calls&days=30")

        assert page.locator("#plan-id").inner_text() == entitlements["plan_id"] == "free"
        assert page.locator("#plan .badge").inner_text() == entitlements["status"]
        cards = page.locator("article.quota")
        assert cards.count() == len(entitlements["quotas"]) == 4
        for quota in entitlements["quotas"]:
            card = f'article.quota[data-resource="{quota["resource_type"]}"]'
            for field in ("used", "limit", "remaining", "from-grants"):
                expected = quota["grant_remaining" if field == "from-grants" else field]
                assert shown(page, f'{card} [data-field="{field}"] .num') == expected, (quota["resource_type"], field)
            rows = page.locator(f"{card} table.grants tbody tr")
            assert rows.count() == len(quota["grants"])
            for grant in quota["grants"]:
                row = f'{card} tr[data-grant-id="{grant["grant_id"]}"]'
                assert shown(page, f'{row} [data-field="grant-remaining"] .num') == grant["remaining"]
                assert shown(page, f'{row} [data-field="grant-amount"] .num') == grant["amount"]
                assert page.locator(f'{row} [data-field="grant-expires"]').get_attribute("data-value") == (
                    grant["expires_at"] or ""
                )
        # The hostile grant reason is text: no element was made of it, and its handler never ran.
        assert page.locator(".grant-reason", has_text="onerror").inner_text() == HOSTILE
        assert page.locator("#app img").count() == 0
        assert page.title() == "Usage and billing"

        held = {r["reservation_id"]: r["estimate"] for r in reservations["items"]}
        assert set(held) == set(seeded.reservation_ids)
        for reservation_id, estimate in held.items():
            assert shown(page, f'tr[data-reservation-id="{reservation_id}"] [data-field="estimate"] .num') == estimate
        shown_events = page.locator("#events-table tbody tr")
        assert shown_events.count() == len(events["items"]) >= 1
        for event in events["items"]:
            row = f'tr[data-event-id="{event["event_id"]}"]'
            assert page.locator(f'{row} [data-field="percent"]').inner_text() == f"{event['threshold_percent']}%"

        assert usage["total"] == str(seeded.usage_total)
        assert shown(page, "#usage-total .num") == usage["total"]
        table_rows = page.locator("#usage-chart table tbody tr")
        assert table_rows.count() == len(usage["points"])
        for i, point in enumerate(usage["points"]):
            cell = table_rows.nth(i).locator("td")
            assert cell.get_attribute("data-value") == point["quantity"], point
        assert page.locator("#usage-chart canvas").count() >= 1

        cost = api(stack, seeded, "cost")
        preview = api(stack, seeded, "invoice-preview")
        assert page.locator('[data-field="cost-amount"]').get_attribute("data-value") == str(cost["amount"])
        assert page.locator('[data-field="total"]').get_attribute("data-value") == str(preview["total"])
        assert page.locator('[data-field="subtotal"]').get_attribute("data-value") == str(preview["subtotal"])
        assert problems.all() == []


def test_the_portal_reads_well_at_360_px(stack: LocalStackProcess, browser: Browser, seeded: SeededTenant) -> None:
    with watched_page(browser, stack.banner.base_url, width=360, height=800) as (page, problems):
        assert open_portal(page, stack, seeded.tenant_id, seeded.portal_token) == "ready", problems.all()
        screenshot(page, "portal-360")
        # Nothing wider than the phone: no sideways scrolling of the page itself.
        assert page.locator("html").evaluate("e => e.scrollWidth") <= 360
        boxes = [page.locator("article.quota").nth(i).bounding_box() for i in range(2)]
        assert boxes[0] is not None
        assert boxes[1] is not None
        assert boxes[1]["y"] > boxes[0]["y"]  # stacked, one card per row
        assert problems.all() == []


def _refused(problems: PageProblems, status: int) -> None:
    (line,) = problems.console_errors
    assert f"status of {status}" in line, line
    assert "/entitlements" in line, line
    problems.console_errors.clear()


def test_a_token_of_another_tenant_or_expired_shows_sign_in_and_reads_nothing(
    stack: LocalStackProcess, browser: Browser, seeded: SeededTenant, short_lived: dict[str, Any]
) -> None:
    other_tenant = f"t_other{str(int(time.time() * 1000))[-8:]}"
    other_token = mint_portal_token(stack.request, other_tenant, ttl_seconds=600)["token"]
    expires = datetime.fromisoformat(short_lived["expires_at"])
    cases = [("other-tenant", other_token, 403), ("expired", short_lived["token"], 401)]
    for name, token, status in cases:
        if name == "expired":
            time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds() + 1))
        with watched_page(browser, stack.banner.base_url) as (page, problems):
            api_calls: list[str] = []

            def record(request: Request, calls: list[str] = api_calls) -> None:
                if "/v1/" in request.url:
                    calls.append(request.url.split("/v1/", 1)[1])

            page.on("request", record)
            assert open_portal(page, stack, seeded.tenant_id, token) == "signed-out", name
            assert page.locator("#sign-in").is_visible()
            assert "expired or is not valid" in page.locator("#sign-in-message").inner_text()
            assert not page.locator("#app").is_visible()
            assert page.locator("article.quota").count() == 0
            assert api_calls == [f"tenants/{seeded.tenant_id}/entitlements"], name
            screenshot(page, f"portal-signed-out-{name}")
            _refused(problems, status)
            assert problems.all() == []


def test_axe_finds_no_serious_or_critical_violation_in_the_portal(
    stack: LocalStackProcess, browser: Browser, seeded: SeededTenant
) -> None:
    # axe is injected as a script, which the page's own CSP rightly forbids: this context bypasses it.
    with watched_page(browser, stack.banner.base_url, bypass_csp=True) as (page, problems):
        assert open_portal(page, stack, seeded.tenant_id, seeded.portal_token) == "ready"
        page.locator("details.chart-table summary").click()  # the data table too
        page.add_script_tag(path=str(AXE))
        result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        serious = [
            (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
            for v in result["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert serious == []
        assert problems.all() == []


def open_console(page: Page, stack: LocalStackProcess, token: str) -> str:
    page.goto(f"{stack.banner.base_url}/console#token={token}")
    page.wait_for_selector("body[data-state]", state="attached", timeout=READY_TIMEOUT_MS)
    return str(page.locator("body").get_attribute("data-state"))


def test_the_console_shows_freshness_tenants_top_consumers_and_the_audit_log(
    stack: LocalStackProcess, browser: Browser, seeded: SeededTenant
) -> None:
    operator = stack.banner.operator_token
    with watched_page(browser, stack.banner.base_url) as (page, problems):
        assert open_console(page, stack, operator) == "ready", problems.all()
        status, freshness = stack.request("GET", "/v1/ops/freshness")
        assert status == 200, freshness
        for card, figure in (("fresh-usage-dlq", "usage_dlq_depth"), ("fresh-webhook-dlq", "webhook_dlq_depth")):
            shown_value = page.locator(f"#{card} [data-field='value']").get_attribute("data-value")
            assert float(shown_value or "nan") == freshness[figure]["value"], card
        for card in ("fresh-queue-age", "fresh-aggregator", "fresh-meter", "fresh-usage-dlq", "fresh-webhook-dlq"):
            assert page.locator(f"#{card}").get_attribute("data-level") in {"ok", "late", "unknown"}
        status, tenants = stack.request("GET", "/v1/tenants?limit=100")
        assert status == 200, tenants
        ours = next(t for t in tenants["items"] if t["tenant_id"] == seeded.tenant_id)
        row = f'#tenants-table tr[data-tenant-id="{seeded.tenant_id}"]'
        assert page.locator(f'{row} [data-field="plan"]').inner_text() == ours["plan_id"]
        assert page.locator(f'{row} [data-field="status"]').inner_text() == ours["status"]
        status, top = stack.request("GET", "/v1/usage/top?resource_type=api_calls&limit=10")
        assert status == 200, top
        mine = next(t for t in top["items"] if t["tenant_id"] == seeded.tenant_id)
        top_row = f'#top-table tr[data-tenant-id="{seeded.tenant_id}"]'
        assert shown(page, f'{top_row} [data-field="quantity"] .num') == mine["quantity"]

        page.locator(f"{row} button").click()
        page.locator("#audit-table tbody tr").first.wait_for()
        status, audit = stack.request("GET", f"/v1/tenants/{seeded.tenant_id}/audit?limit=25")
        assert status == 200, audit
        shown_ids = [
            page.locator("#audit-table tbody tr").nth(i).get_attribute("data-entry-id")
            for i in range(page.locator("#audit-table tbody tr").count())
        ]
        assert shown_ids == [entry["id"] for entry in audit["items"]]
        assert page.locator("#meters-table tbody tr").count() == 2  # api_calls and tokens are metered
        screenshot(page, "console-1280")
        assert problems.all() == []
    with watched_page(browser, stack.banner.base_url, width=360, height=800) as (page, problems):
        assert open_console(page, stack, operator) == "ready"
        assert page.locator("html").evaluate("e => e.scrollWidth") <= 360
        screenshot(page, "console-360")
        assert problems.all() == []


def test_the_console_refuses_a_tenant_credential(
    stack: LocalStackProcess, browser: Browser, seeded: SeededTenant
) -> None:
    with watched_page(browser, stack.banner.base_url) as (page, problems):
        assert open_console(page, stack, seeded.portal_token) == "signed-out"
        assert page.locator("#sign-in").is_visible()
        assert page.locator("#freshness article").count() == 0
        (line,) = problems.console_errors
        assert "status of 403" in line, line
        problems.console_errors.clear()
        assert problems.all() == []


EXAMPLE = ROOT / "examples" / "billing_usage_widget.html"
EXAMPLE_CSS = ROOT / "examples" / "billing_usage_widget.css"


def test_the_widget_embedded_in_the_example_page_shows_the_apis_numbers(
    stack: LocalStackProcess, browser: Browser, seeded: SeededTenant
) -> None:
    base = stack.banner.base_url
    html = (
        EXAMPLE.read_text()
        .replace("{API}", base)
        .replace("{TENANT}", seeded.tenant_id)
        .replace("{TOKEN}", seeded.portal_token)
    )
    with watched_page(browser, base) as (page, problems):
        # The SaaS's page, served (here by the browser itself) at a path of the platform's origin: the widget
        # then calls the API without CORS, which the platform does not answer yet.
        page.route(f"{base}/example/embed.html", lambda route: route.fulfill(body=html, content_type="text/html"))
        page.route(
            f"{base}/example/billing_usage_widget.css",
            lambda route: route.fulfill(body=EXAMPLE_CSS.read_text(), content_type="text/css"),
        )
        page.goto(f"{base}/example/embed.html")
        widgets = page.locator("billing-usage")
        assert widgets.count() == 2
        page.locator("billing-usage[data-state='ready']").nth(1).wait_for(timeout=READY_TIMEOUT_MS)
        entitlements = api(stack, seeded, "entitlements")
        full = widgets.nth(0)
        assert "null" not in full.locator(".box").inner_text()
        for quota in entitlements["quotas"]:
            node = full.locator(f'.quota[data-resource="{quota["resource_type"]}"]')
            assert node.get_attribute("data-used") == quota["used"]
            assert node.get_attribute("data-limit") == (quota["limit"] or "")
            assert node.get_attribute("data-remaining") == quota["remaining"]
        usage = api(stack, seeded, "usage?resource_type=api_calls&days=14")
        bars = widgets.nth(1).locator("svg rect")
        assert [bars.nth(i).get_attribute("data-value") for i in range(bars.count())] == [
            p["quantity"] for p in usage["points"]
        ]
        # The host's custom properties reach inside the shadow root.
        fill = widgets.nth(1).locator(".fill").first.evaluate("e => getComputedStyle(e).backgroundColor")
        assert fill == "rgb(240, 180, 41)"
        screenshot(page, "widget-example")
        assert problems.all() == []

        page.set_content("")  # a refused token: the widget empties itself and tells the host page
        page.route(
            f"{base}/example/expired.html",
            lambda route: route.fulfill(body=html.replace(seeded.portal_token, "bpt_" + "0" * 16 + "_" + "A" * 43)),
        )
        page.goto(f"{base}/example/expired.html")
        page.locator("billing-usage[data-state='signed-out']").first.wait_for(timeout=READY_TIMEOUT_MS)
        assert "expired" in widgets.first.locator(".message").inner_text()
        assert widgets.first.locator(".quota").count() == 0
        problems.console_errors.clear()  # the browser logs the refused calls (401) itself
        assert problems.all() == []


@pytest.mark.parametrize("page_name", ["console", "widget"])
def test_axe_finds_no_serious_or_critical_violation_in_the_console_and_widget(
    stack: LocalStackProcess, browser: Browser, seeded: SeededTenant, page_name: str
) -> None:
    base = stack.banner.base_url
    with watched_page(browser, base, bypass_csp=True) as (page, problems):
        if page_name == "console":
            assert open_console(page, stack, stack.banner.operator_token) == "ready"
        else:
            html = (
                EXAMPLE.read_text()
                .replace("{API}", base)
                .replace("{TENANT}", seeded.tenant_id)
                .replace("{TOKEN}", seeded.portal_token)
            )
            page.route(f"{base}/example/embed.html", lambda route: route.fulfill(body=html, content_type="text/html"))
            page.route(
                f"{base}/example/billing_usage_widget.css",
                lambda route: route.fulfill(body="", content_type="text/css"),
            )
            page.goto(f"{base}/example/embed.html")
            page.locator("billing-usage[data-state='ready']").nth(1).wait_for(timeout=READY_TIMEOUT_MS)
        page.add_script_tag(path=str(AXE))
        result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        serious = [(v["id"], v["impact"]) for v in result["violations"] if v["impact"] in ("serious", "critical")]
        assert serious == []
        assert problems.all() == []
