"""Webhooks through the real EntitlementService: the tenant's PLAN item and quota counters in the
billing table (moto) follow Stripe. Upgrades raise limits at once keeping this period's usage, a
renewal starts the period afresh (once, however many events carry it), unpaid suspends, cancellation
returns the tenant to the free plan, and a late old event changes nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from types import ModuleType
from typing import Any

import pytest

from billing_platform.entitlements.models import SUBSCRIBED
from billing_platform.entitlements.service import EntitlementService
from billing_platform.providers.factory import set_billing_provider
from billing_platform.providers.stripe import StripeBillingProvider
from billing_platform.settings import get_settings
from billing_platform.subscriptions.webhooks import WebhookProcessor
from tests.factories import stripe as sf
from tests.factories.apigw import api_event, json_body
from tests.factories.handlers import load_handler
from tests.factories.lambda_context import LambdaContext


@dataclass
class World:
    handler: ModuleType
    http: sf.FakeStripeHTTPClient

    def deliver(self, *events: dict[str, Any]) -> list[str]:
        outcomes = []
        for evt in events:
            status, body = sf.deliver(self.handler, evt)
            assert status == 200, body
            outcomes.append(body["outcome"])
        return outcomes

    def story(self, tenant_id: str) -> sf.SubscriptionStory:
        return sf.SubscriptionStory(self.http.api, tenant_id, start=int(time.time()) - 3600)

    @staticmethod
    def service() -> EntitlementService:
        return EntitlementService(get_settings(), cache_ttl_seconds=0)

    def quotas(self, tenant_id: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        view = self.service().entitlements(tenant_id).to_dict()
        return view, {q["resource_type"]: q for q in view["quotas"]}  # type: ignore[attr-defined]


@pytest.fixture
def world(moto_aws: dict[str, str], env: pytest.MonkeyPatch) -> Iterator[World]:
    env.setenv("STRIPE_WEBHOOK_SECRET", sf.WEBHOOK_SECRET)
    env.setenv("STRIPE_SECRET_KEY", sf.API_KEY)
    get_settings.cache_clear()
    http = sf.FakeStripeHTTPClient()
    provider = StripeBillingProvider(get_settings(), http_client=http)
    set_billing_provider(provider)
    handler = load_handler("stripe_webhook")
    handler.processor.use(WebhookProcessor(provider.sync))  # the real EntitlementService, built lazily
    yield World(handler, http)
    set_billing_provider(None)


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def test_new_subscription_provisions_the_plans_quotas_and_features(world: World) -> None:
    story = world.story("t_new")
    world.deliver(story.customer_created(), *story.subscribe("price_pro_monthly"))

    view, quotas = world.quotas("t_new")
    assert (view["plan_id"], view["status"], view["subscribed"]) == ("pro", "active", True)
    assert (view["period_start"], view["period_end"]) == (
        iso(story.item["current_period_start"]),
        iso(story.item["current_period_end"]),
    )
    assert view["features"]["audit_export"] is True
    assert view["features"]["sso"] is False
    assert (quotas["executions"]["limit"], quotas["executions"]["used"]) == ("10000", "0")
    assert quotas["tokens"]["policy"] == "soft"


def test_upgrade_raises_limits_at_once_and_keeps_this_periods_usage(world: World) -> None:
    story = world.story("t_up")
    world.deliver(*story.subscribe("price_pro_monthly"))
    assert world.service().consume("t_up", "storage_mb", Decimal(10_000)).allowed
    assert not world.service().consume("t_up", "storage_mb", Decimal(500)).allowed  # 10240 hard limit

    world.deliver(story.change_price("price_enterprise_monthly"))

    view, quotas = world.quotas("t_up")
    assert view["plan_id"] == "enterprise"
    assert view["features"]["sso"] is True
    assert (quotas["storage_mb"]["limit"], quotas["storage_mb"]["used"]) == ("1048576", "10000")
    assert quotas["executions"]["limit"] is None  # unlimited
    assert world.service().consume("t_up", "storage_mb", Decimal(500)).allowed


def test_downgrade_lowers_limits_keeping_usage(world: World) -> None:
    story = world.story("t_down")
    world.deliver(*story.subscribe("price_pro_monthly"))
    world.service().consume("t_down", "executions", Decimal(150))

    world.deliver(story.change_price("price_free_monthly"))

    _view, quotas = world.quotas("t_down")
    assert (quotas["executions"]["limit"], quotas["executions"]["used"]) == ("100", "150")
    assert not world.service().consume("t_down", "executions", Decimal(1)).allowed


def test_renewal_resets_used_once_however_many_events_carry_it(world: World) -> None:
    story = world.story("t_renew")
    world.deliver(*story.subscribe("price_pro_monthly"))
    world.service().consume("t_renew", "executions", Decimal(70))

    updated, paid = story.renew()
    world.deliver(updated)
    _view, quotas = world.quotas("t_renew")
    assert quotas["executions"]["used"] == "0"
    assert quotas["executions"]["period_end"] == iso(story.item["current_period_end"])

    world.service().consume("t_renew", "executions", Decimal(5))
    assert world.deliver(paid, updated) == ["applied:active", "duplicate"]  # same period again, and a dup
    _view, quotas = world.quotas("t_renew")
    assert quotas["executions"]["used"] == "5"


def test_unpaid_suspends_and_payment_restores(world: World) -> None:
    story = world.story("t_unpaid")
    world.deliver(*story.subscribe("price_pro_monthly"))
    world.deliver(*story.fail_payment())
    assert world.service().consume("t_unpaid", "executions", Decimal(1)).allowed  # pro: 7 days of grace

    world.deliver(*story.fail_payment(final=True))
    denied = world.service().consume("t_unpaid", "executions", Decimal(1))
    assert not denied.allowed
    assert denied.reason is not None
    assert denied.reason.value == "suspended"

    world.deliver(*story.pay())
    assert world.service().consume("t_unpaid", "executions", Decimal(1)).allowed


def test_cancellation_returns_to_the_free_plan_at_the_end(world: World) -> None:
    story = world.story("t_cancel")
    world.deliver(*story.subscribe("price_enterprise_monthly"))
    world.deliver(story.cancel_at_period_end())
    view, _ = world.quotas("t_cancel")
    assert view["plan_id"] == "enterprise"  # paid until the period ends

    world.deliver(story.end())

    view, quotas = world.quotas("t_cancel")
    assert view["plan_id"] == "free"
    assert view["features"]["sso"] is False
    assert quotas["executions"]["limit"] == "100"


def test_a_late_old_event_does_not_bring_the_old_plan_back(world: World) -> None:
    story = world.story("t_late")
    created, _ = story.subscribe("price_free_monthly")
    upgraded = story.change_price("price_enterprise_monthly")
    world.deliver(upgraded)

    assert world.deliver(created) == ["ignored_stale"]
    view, _ = world.quotas("t_late")
    assert view["plan_id"] == "enterprise"


class CrashAfterApply:
    """The real service, crashing right after its effect the next `crash` times (a Lambda dying
    between the entitlement write and the ledger's `done`)."""

    def __init__(self, inner: EntitlementService) -> None:
        self.inner = inner
        self.crash = 0

    def apply_plan(self, *args: Any, **kwargs: Any) -> None:
        self.inner.apply_plan(*args, **kwargs)
        if self.crash:
            self.crash -= 1
            raise RuntimeError("crashed after the effect")

    def suspend(self, tenant_id: str, reason: str) -> None:
        self.inner.suspend(tenant_id, reason)

    def revoke(self, tenant_id: str) -> None:
        self.inner.revoke(tenant_id)


def test_a_renewal_retried_after_a_crash_resets_the_period_once(world: World) -> None:
    effects = CrashAfterApply(world.service())
    world.handler.processor.use(WebhookProcessor(world.handler.processor().provider, entitlements=effects))
    story = world.story("t_crash")
    world.deliver(*story.subscribe("price_pro_monthly"))
    world.service().consume("t_crash", "executions", Decimal(30))

    updated, _paid = story.renew()
    effects.crash = 1
    status, body = sf.deliver(world.handler, updated)
    assert (status, body["code"]) == (500, "internal_error")
    _view, quotas = world.quotas("t_crash")
    assert quotas["executions"]["used"] == "0"  # the effect happened before the crash
    world.service().consume("t_crash", "executions", Decimal(5))

    assert world.deliver(updated) == ["applied:active"]  # Stripe's retry

    _view, quotas = world.quotas("t_crash")
    assert quotas["executions"]["used"] == "5"  # not reset a second time


def test_pause_denies_and_resume_restores_through_the_real_service(world: World) -> None:
    story = world.story("t_paused")
    world.deliver(*story.subscribe("price_pro_monthly"))
    world.deliver(story.pause())
    assert not world.service().consume("t_paused", "executions", Decimal(1)).allowed
    view, _ = world.quotas("t_paused")
    assert view["features"]["audit_export"] is False  # features are off while suspended

    world.deliver(story.resume())
    assert world.service().consume("t_paused", "executions", Decimal(1)).allowed
    view, _ = world.quotas("t_paused")
    assert (view["plan_id"], view["status"]) == ("pro", "active")


def _subscribed_listing(world: World, tenant_id: str) -> tuple[str, str, bool]:
    api = load_handler("entitlements")
    response = api.handler(
        api_event("GET", f"/v1/tenants/{tenant_id}/entitlements", tenant_id=tenant_id), LambdaContext()
    )
    assert response["statusCode"] == 200, response
    body = json_body(response)
    return body["plan_id"], body["status"], body["subscribed"]


LIFECYCLES: dict[str, tuple[list[str], tuple[str, str, bool]]] = {
    "trialing": (["trial"], ("pro", "trialing", True)),
    "active": (["subscribe"], ("pro", "active", True)),
    "past-due-in-grace": (["subscribe", "fail"], ("pro", "past_due", True)),
    "suspended-unpaid": (["subscribe", "fail", "fail_final"], ("pro", "suspended", True)),
    "suspended-paused": (["subscribe", "pause"], ("pro", "suspended", True)),
    "cancel-at-period-end-pending": (["subscribe", "cancel_at_end"], ("pro", "active", True)),
    "canceled-at-period-end": (["subscribe", "cancel_at_end", "end"], ("free", "canceled", False)),
    "canceled-immediately": (["subscribe", "end"], ("free", "canceled", False)),
    "canceled-while-suspended": (["subscribe", "fail", "fail_final", "end"], ("free", "canceled", False)),
    "subscribed-again-after-cancel": (["subscribe", "end", "subscribe"], ("pro", "active", True)),
}


@pytest.mark.parametrize(("steps", "expected"), list(LIFECYCLES.values()), ids=list(LIFECYCLES))
def test_entitlements_subscribed_is_true_exactly_while_a_subscription_has_not_ended(
    world: World, steps: list[str], expected: tuple[str, str, bool]
) -> None:
    """What GET /v1/tenants/{id}/entitlements says after each lifecycle, through the webhook and API handlers:
    an ended subscription (immediately or at its period's end) leaves the tenant on the free plan, not subscribed."""
    tenant_id = f"t_life_{len(steps)}_{'_'.join(steps)}"[:60]
    story = world.story(tenant_id)
    world.deliver(story.customer_created())
    actions = {
        "trial": lambda: world.deliver(*story.subscribe("price_pro_monthly", trial_days=14)),
        "subscribe": lambda: world.deliver(*story.subscribe("price_pro_monthly")),
        "fail": lambda: world.deliver(*story.fail_payment()),
        "fail_final": lambda: world.deliver(*story.fail_payment(final=True)),
        "pause": lambda: world.deliver(story.pause()),
        "cancel_at_end": lambda: world.deliver(story.cancel_at_period_end()),
        "end": lambda: world.deliver(story.end()),
    }
    for step in steps:
        actions[step]()

    assert _subscribed_listing(world, tenant_id) == expected


def test_openapi_documents_what_subscribed_means(moto_aws: dict[str, str]) -> None:
    document = json.loads(load_handler("entitlements").app.get_openapi_json_schema())
    schema = document["components"]["schemas"]["TenantEntitlementsOut"]
    description = schema["properties"]["subscribed"]["description"]
    # One text for the model and the document: what clients read is what the code promises.
    assert description == SUBSCRIBED
    assert "409 subscription_exists" in description
    responses = document["paths"]["/v1/tenants/{tenant_id}/entitlements"]["get"]["responses"]
    assert responses["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/TenantEntitlementsOut")
