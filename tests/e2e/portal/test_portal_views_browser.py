"""The portal's grouped usage chart, spend cap, entity view and the widget embedded on another origin, in
headless Chromium against the local stack, for a tenant on a priced plan with token usage by model and by
entity. Every figure shown must equal the API's answer for the same credential; a portal token never gets
the spend cap's edit controls and its write is refused; an entity's token reads its entity and nothing of
its siblings or its tenant; a page on an origin the token does not name cannot read the API's answers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import pytest

from tests.factories.browser import watched_page
from tests.factories.local_stack_process import ROOT, LocalStackProcess, eventually
from tests.factories.portal import HOSTILE, MeteredTenant, mint_portal_token, seed_metered_tenant
from tests.factories.portal import METERED_USAGE as METERED

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.xdist_group("local_stack_portal")]

SCREENSHOTS = ROOT / "artifacts" / "screenshots"
EXAMPLE = ROOT / "examples" / "billing_usage_widget.html"
EXAMPLE_CSS = ROOT / "examples" / "billing_usage_widget.css"
READY_TIMEOUT_MS = 30_000
TIMEOUT = 60.0


class ExampleSite:
    """A SaaS's own web server on another origin (its own port) serving the widget example page."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[str, str]] = {}
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body, kind = site.pages.get(self.path, ("not found", "text/plain"))
                self.send_response(200 if self.path in site.pages else 404)
                self.send_header("Content-Type", kind)
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve_example(self, api: str, tenant: str, token: str) -> str:
        html = EXAMPLE.read_text().replace("{API}", api).replace("{TENANT}", tenant).replace("{TOKEN}", token)
        self.pages["/billing.html"] = (html, "text/html; charset=utf-8")
        self.pages["/billing_usage_widget.css"] = (EXAMPLE_CSS.read_text(), "text/css")
        return f"{self.origin}/billing.html"


@pytest.fixture(scope="module")
def sites() -> Iterator[tuple[ExampleSite, ExampleSite]]:
    allowed, other = ExampleSite(), ExampleSite()
    yield allowed, other
    for site in (allowed, other):
        site.server.shutdown()


@pytest.fixture(scope="module")
def metered(stack: LocalStackProcess, sites: tuple[ExampleSite, ExampleSite]) -> MeteredTenant:
    tenant = seed_metered_tenant(
        stack.request, f"t_metered{str(int(time.time() * 1000))[-8:]}", allowed_origins=(sites[0].origin,)
    )

    def ready() -> tuple[bool, Any]:
        status, ent = stack.request("GET", f"/v1/tenants/{tenant.tenant_id}/entitlements", token=tenant.admin_key)
        series = series_of(stack, tenant, tenant.portal_token, granularity="day", days=3)
        return status == 200 and ent["plan_id"] == "pro" and series["total"] == str(tenant.usage_total), series

    eventually(ready, TIMEOUT)  # the plan through the signed webhook, the usage through the pipeline
    return tenant


def series_of(
    stack: LocalStackProcess, tenant: MeteredTenant, token: str, *, granularity: str, days: int, **query: str
) -> Any:
    """The usage series the portal asks for: the last `days` days (or `days * 24` hours), this one included."""
    step = timedelta(days=1) if granularity == "day" else timedelta(hours=1)
    now = datetime.now(UTC)
    end = now.replace(minute=0, second=0, microsecond=0) + step
    if granularity == "day":
        end = end.replace(hour=0)
    count = days if granularity == "day" else days * 24
    params = {
        "resource_type": "tokens",
        "granularity": granularity,
        "start": (end - count * step).isoformat().replace("+00:00", "Z"),
        "end": end.isoformat().replace("+00:00", "Z"),
        **query,
    }
    status, body = stack.request("GET", f"/v1/tenants/{tenant.tenant_id}/usage/series?{urlencode(params)}", token=token)
    assert status == 200, body
    return body


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def open_portal(page: Page, stack: LocalStackProcess, **fragment: str) -> str:
    page.goto(f"{stack.banner.base_url}/portal#{urlencode(fragment)}")
    page.wait_for_selector("body[data-state]", state="attached", timeout=READY_TIMEOUT_MS)
    return str(page.locator("body").get_attribute("data-state"))


def choose_usage(page: Page, *, resource: str, granularity: str, range_: str, group: str) -> None:
    page.select_option("#usage-resource", resource)
    page.select_option("#usage-granularity", granularity)
    page.select_option("#usage-range", range_)
    if group:
        page.locator(f'#usage-group option[value="{group}"]').wait_for(state="attached")
    page.select_option("#usage-group", group)
    page.wait_for_selector(f'body[data-usage="{resource} {granularity} {group} {range_}"]', state="attached")


def table_values(page: Page, key: str) -> list[str | None]:
    cells = page.locator(f'#usage-chart table tbody td[data-series="{key}"]')
    return [cells.nth(i).get_attribute("data-value") for i in range(cells.count())]


def test_the_usage_chart_grouped_by_model_and_by_entity_shows_the_apis_numbers(
    stack: LocalStackProcess, browser: Browser, metered: MeteredTenant
) -> None:
    with watched_page(browser, stack.banner.base_url) as (page, problems):
        assert open_portal(page, stack, tenant=metered.tenant_id, token=metered.portal_token) == "ready"
        cases = [("day", "7", 7, "model"), ("hour", "48", 2, "entity"), ("day", "30", 30, "")]
        for granularity, range_, days, group in cases:
            choose_usage(page, resource="tokens", granularity=granularity, range_=range_, group=group)
            query = {"group_by": group, "limit": "10"} if group else {"limit": "10"}
            answer = series_of(stack, metered, metered.portal_token, granularity=granularity, days=days, **query)
            assert answer["total"] == str(metered.usage_total)
            assert page.locator("#usage-total > .num").get_attribute("data-value") == answer["total"]
            rows = page.locator("#usage-chart table.data-table tbody tr")
            assert rows.count() == len(answer["points"])
            assert [rows.nth(i).get_attribute("data-start") for i in range(rows.count())] == [
                p["start"] for p in answer["points"]
            ]
            if not group:
                assert table_values(page, "total") == [p["quantity"] for p in answer["points"]]
                continue
            assert {g["value"] for g in answer["groups"]} == (
                {"large", "small"} if group == "model" else {metered.entity_id, metered.sibling_id}
            )
            for g in answer["groups"]:
                assert table_values(page, f"group:{g['value']}") == [p["quantity"] for p in g["points"]], g["value"]
                total = page.locator(f'.group-totals [data-group="{g["value"]}"] .num')
                assert total.get_attribute("data-value") == g["total"]
            assert table_values(page, "total") == [p["quantity"] for p in answer["points"]]
            assert page.locator('[data-field="ungrouped"] .num').get_attribute("data-value") == answer["ungrouped"]
            assert page.locator('[data-field="other"] .num').get_attribute("data-value") == answer["other"]
            if group == "entity":
                assert answer["ungrouped"] == "80"  # the record sent without an entity
                # The hostile entity name is an entity's name, not its id: ids are shown, and nothing is markup.
                page.locator("details.chart-table summary").click()
                screenshot(page, "portal-usage-by-entity-hourly")
        choose_usage(page, resource="tokens", granularity="day", range_="7", group="model")
        page.locator("details.chart-table summary").click()
        screenshot(page, "portal-usage-by-model")
        assert page.locator("#app img").count() == 0
        assert problems.all() == []


def _put_in_page(page: Page, stack: LocalStackProcess, tenant: MeteredTenant, token: str) -> Any:
    """A PUT of the spend cap sent from inside the page (as a script on it could), with `token`."""
    return page.evaluate(
        """async ([url, token]) => {
            const r = await fetch(url, {method: "PUT", headers: {Authorization: `Bearer ${token}`,
                "Content-Type": "application/json"}, body: JSON.stringify({currency: "usd", amount: 100})});
            return [r.status, await r.json()];
        }""",
        [f"{stack.banner.base_url}/v1/tenants/{tenant.tenant_id}/spend-cap", token],
    )


def test_the_spend_cap_is_shown_to_a_portal_token_and_editable_only_with_an_admin_key(
    stack: LocalStackProcess, browser: Browser, metered: MeteredTenant
) -> None:
    path = f"/v1/tenants/{metered.tenant_id}/spend-cap"
    with watched_page(browser, stack.banner.base_url) as (page, problems):
        assert open_portal(page, stack, tenant=metered.tenant_id, token=metered.portal_token) == "ready"
        status, cap = stack.request("GET", path, token=metered.portal_token)
        assert status == 200, cap
        assert page.locator("#spend-cap").is_visible()
        assert page.locator('[data-field="cap-spend"]').get_attribute("data-value") == cap["spend"]
        assert not page.locator("#spend-cap-form").is_visible()
        assert page.locator("#spend-cap-amount").is_hidden()
        status, body = _put_in_page(page, stack, metered, metered.portal_token)
        assert status == 403, body
        problems.console_errors.clear()  # the browser logs the refused write itself
        assert stack.request("GET", path, token=metered.portal_token)[1] == cap  # nothing written
        assert problems.all() == []

    with watched_page(browser, stack.banner.base_url) as (page, problems):
        assert open_portal(page, stack, tenant=metered.tenant_id, token=metered.admin_key) == "ready"
        form = page.locator("#spend-cap-form")
        assert form.is_visible()
        page.fill("#spend-cap-amount", "12.50")
        page.select_option("#spend-cap-kind", "soft")
        page.locator("#spend-cap-form button[type=submit]").click()
        page.wait_for_selector("#spend-cap-status:has-text('Cap saved.')")
        status, cap = stack.request("GET", path, token=metered.portal_token)
        assert status == 200, cap
        assert (cap["capped"], cap["amount"], cap["kind"], cap["currency"]) == (True, 1250, "soft", "usd")
        assert page.locator('[data-field="cap-amount"]').get_attribute("data-value") == "1250"
        assert page.locator('[data-field="cap-amount"]').inner_text() == "$12.50"
        assert page.locator('[data-field="cap-spend"]').get_attribute("data-value") == cap["spend"]
        screenshot(page, "portal-spend-cap-admin")
        # A per resource cap set through the API survives a change of the total made on the page.
        per_resource = {"currency": "usd", "amount": 1250, "kind": "soft", "resources": {"tokens": 500}}
        assert stack.request("PUT", path, per_resource, token=metered.admin_key)[0] == 200
        page.reload()
        page.wait_for_selector("body[data-state='ready']", state="attached", timeout=READY_TIMEOUT_MS)
        page.fill("#spend-cap-amount", "20")
        page.locator("#spend-cap-form button[type=submit]").click()
        page.wait_for_selector("#spend-cap-status:has-text('Cap saved.')")
        status, cap = stack.request("GET", path, token=metered.portal_token)
        assert (cap["amount"], cap["kind"], cap["resources"]) == (2000, "soft", {"tokens": 500})
        page.locator("#spend-cap-remove").click()
        page.wait_for_selector("#spend-cap-status:has-text('Cap removed.')")
        status, cap = stack.request("GET", path, token=metered.portal_token)
        assert (status, cap["capped"]) == (200, False)
        assert page.locator('[data-field="cap-amount"]').get_attribute("data-value") == ""
        assert problems.all() == []


def test_an_entity_token_opens_its_entity_view_and_reads_nothing_of_its_siblings_or_tenant(
    stack: LocalStackProcess, browser: Browser, metered: MeteredTenant
) -> None:
    token, tenant = metered.entity_token, metered.tenant_id
    with watched_page(browser, stack.banner.base_url) as (page, problems):
        state = open_portal(page, stack, tenant=tenant, entity=metered.entity_id, token=token)
        assert state == "ready", problems.all()
        status, entity = stack.request("GET", f"/v1/entities/{metered.entity_id}", token=token)
        assert status == 200, entity
        status, limits = stack.request("GET", f"/v1/entities/{metered.entity_id}/limits", token=token)
        assert status == 200, limits
        assert page.locator("#entity-name").inner_text() == entity["name"] == "Team A"
        (limit,) = limits["items"]
        row = f'#entity-limits-table tr[data-resource="{limit["resource_type"]}"]'
        for field in ("limit", "used", "remaining"):
            assert page.locator(f'{row} [data-field="{field}"] .num').get_attribute("data-value") == str(limit[field])
        answer = series_of(stack, metered, token, granularity="day", days=30)
        mine = sum(q for _h, _m, entity_id, q in METERED if entity_id == metered.entity_id)
        assert answer["total"] == str(mine)
        assert page.locator("#usage-total > .num").get_attribute("data-value") == answer["total"]
        assert table_values(page, "total") == [p["quantity"] for p in answer["points"]]
        assert page.locator("#usage-group").is_hidden()
        assert not page.locator("#quotas-section").is_visible()
        screenshot(page, "portal-entity")
        assert problems.all() == []

    # What the token may not read: its sibling, the tenant's other routes, another grouping.
    assert stack.request("GET", f"/v1/entities/{metered.sibling_id}", token=token)[0] == 403
    assert stack.request("GET", f"/v1/entities/{metered.sibling_id}/limits", token=token)[0] == 403
    for route in ("entitlements", "usage?resource_type=tokens&days=7", "cost", "spend-cap", "reservations", "events"):
        assert stack.request("GET", f"/v1/tenants/{tenant}/{route}", token=token)[0] == 403, route
    by_entity = series_of(stack, metered, token, granularity="day", days=3, group_by="entity")
    assert [g["value"] for g in by_entity["groups"]] == [metered.entity_id]
    assert (by_entity["other"], by_entity["ungrouped"]) == ("0", "0")
    status, body = stack.request(
        "GET",
        f"/v1/tenants/{tenant}/usage/series?resource_type=tokens&start=2026-01-01T00:00:00Z"
        "&end=2026-01-02T00:00:00Z&group_by=model",
        token=token,
    )
    assert status == 422, body


def test_an_entity_named_with_markup_is_shown_as_text_in_its_view(
    stack: LocalStackProcess, browser: Browser, metered: MeteredTenant
) -> None:
    tenant, entity_id = metered.tenant_id, metered.sibling_id
    token = mint_portal_token(stack.request, tenant, ttl_seconds=3600, entity_id=entity_id)["token"]
    status, entity = stack.request("GET", f"/v1/entities/{entity_id}", token=token)
    assert (status, entity["name"]) == (200, HOSTILE)
    with watched_page(browser, stack.banner.base_url) as (page, problems):
        state = open_portal(page, stack, tenant=tenant, entity=entity_id, token=token)
        assert state == "ready", problems.all()
        # The name is the text of its element: no element was made of it and its handler never ran.
        assert page.locator("#entity-name").inner_text() == HOSTILE
        assert page.locator("#app img").count() == 0
        assert page.title() == "Usage and billing"
        assert problems.all() == []


def test_the_widget_on_another_origin_shows_the_apis_numbers_and_a_foreign_origin_is_refused(
    stack: LocalStackProcess, browser: Browser, metered: MeteredTenant, sites: tuple[ExampleSite, ExampleSite]
) -> None:
    api_base = stack.banner.base_url
    allowed, other = sites
    status, entitlements = stack.request(
        "GET", f"/v1/tenants/{metered.tenant_id}/entitlements", token=metered.portal_token
    )
    assert status == 200, entitlements
    with watched_page(browser, api_base, allowed.origin) as (page, problems):
        page.goto(allowed.serve_example(api_base, metered.tenant_id, metered.portal_token))
        page.locator("billing-usage[data-state='ready']").nth(1).wait_for(timeout=READY_TIMEOUT_MS)
        full = page.locator("billing-usage").first
        for quota in entitlements["quotas"]:
            node = full.locator(f'.quota[data-resource="{quota["resource_type"]}"]')
            assert node.get_attribute("data-used") == quota["used"]
            assert node.get_attribute("data-limit") == (quota["limit"] or "")
        status, usage = stack.request(
            "GET", f"/v1/tenants/{metered.tenant_id}/usage?resource_type=api_calls&days=14", token=metered.portal_token
        )
        bars = page.locator("billing-usage").nth(1).locator("svg rect")
        assert [bars.nth(i).get_attribute("data-value") for i in range(bars.count())] == [
            p["quantity"] for p in usage["points"]
        ]
        screenshot(page, "widget-cross-origin")
        assert problems.all() == []

    with watched_page(browser, api_base, other.origin) as (page, problems):
        page.goto(other.serve_example(api_base, metered.tenant_id, metered.portal_token))
        page.locator("billing-usage[data-state='error']").first.wait_for(timeout=READY_TIMEOUT_MS)
        assert page.locator("billing-usage").first.locator(".quota").count() == 0
        assert "could not be loaded" in page.locator("billing-usage").first.locator(".message").inner_text()
        refused = [e for e in problems.console_errors if "blocked by CORS policy" in e]
        assert refused, problems.console_errors
        assert all("Access-Control-Allow-Origin" in e or "Failed to load" in e for e in problems.console_errors)


AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"


@pytest.mark.parametrize("view", ["admin", "entity"])
def test_axe_finds_no_serious_or_critical_violation_in_the_admin_and_entity_views(
    stack: LocalStackProcess, browser: Browser, metered: MeteredTenant, view: str
) -> None:
    # axe is injected as a script, which the page's own CSP rightly forbids: this context bypasses it.
    with watched_page(browser, stack.banner.base_url, bypass_csp=True) as (page, problems):
        if view == "admin":
            assert open_portal(page, stack, tenant=metered.tenant_id, token=metered.admin_key) == "ready"
            assert page.locator("#spend-cap-form").is_visible()
            choose_usage(page, resource="tokens", granularity="hour", range_="24", group="model")
        else:
            fragment = {"tenant": metered.tenant_id, "entity": metered.entity_id, "token": metered.entity_token}
            assert open_portal(page, stack, **fragment) == "ready"
        page.locator("details.chart-table summary").click()
        page.add_script_tag(path=str(AXE))
        result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        serious = [
            (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
            for v in result["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert serious == []
        assert problems.all() == []


def test_the_console_signed_in_with_aws_credentials_signs_its_reads_with_sigv4(
    stack: LocalStackProcess, browser: Browser, metered: MeteredTenant
) -> None:
    """The deployed path of the console: IAM authorization. The local stack checks SigV4 as API Gateway does,
    for the principal `local-operator` whose secret is the operator token."""
    with watched_page(browser, stack.banner.base_url) as (page, problems):
        sent: list[str] = []
        page.on("request", lambda r: sent.append(r.headers.get("authorization", "")) if "/v1/" in r.url else None)
        page.goto(f"{stack.banner.base_url}/console")
        page.wait_for_selector("body[data-state='signed-out']", state="attached")
        assert page.locator("#aws-region").input_value() == "us-east-1"
        page.fill("#aws-key-id", "local-operator")
        page.fill("#aws-secret", stack.banner.operator_token)
        page.locator("#aws-sign-in-form button[type=submit]").click()
        page.wait_for_selector("body[data-state='ready']", state="attached", timeout=READY_TIMEOUT_MS)
        row = f'#tenants-table tr[data-tenant-id="{metered.tenant_id}"]'
        page.locator(row).wait_for()
        assert page.locator(f'{row} [data-field="plan"]').inner_text() == "pro"
        assert sent
        assert all(header.startswith("AWS4-HMAC-SHA256 Credential=local-operator/") for header in sent), sent
        screenshot(page, "console-sigv4")
        assert problems.all() == []

    with watched_page(browser, stack.banner.base_url) as (page, problems):
        page.goto(f"{stack.banner.base_url}/console")
        page.wait_for_selector("body[data-state='signed-out']", state="attached")
        page.fill("#aws-key-id", "local-operator")
        page.fill("#aws-secret", "not-the-operator-token")
        page.locator("#aws-sign-in-form button[type=submit]").click()
        page.wait_for_selector("#sign-in-message:has-text('refused')")
        assert page.locator("#freshness article").count() == 0
        (line,) = problems.console_errors
        assert "status of 403" in line, line


@pytest.mark.parametrize("view", ["admin", "entity"])
def test_the_admin_and_entity_views_read_well_at_360_px(
    stack: LocalStackProcess, browser: Browser, metered: MeteredTenant, view: str
) -> None:
    with watched_page(browser, stack.banner.base_url, width=360, height=800) as (page, problems):
        if view == "admin":
            assert open_portal(page, stack, tenant=metered.tenant_id, token=metered.admin_key) == "ready"
            choose_usage(page, resource="tokens", granularity="day", range_="7", group="entity")
        else:
            fragment = {"tenant": metered.tenant_id, "entity": metered.entity_id, "token": metered.entity_token}
            assert open_portal(page, stack, **fragment) == "ready"
        # Nothing wider than the phone: no sideways scrolling of the page itself.
        assert page.locator("html").evaluate("e => e.scrollWidth") <= 360
        screenshot(page, f"portal-{view}-360")
        assert problems.all() == []
