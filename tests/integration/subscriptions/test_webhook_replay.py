"""Property: whatever order Stripe delivers a day of events in, with duplicates and a crash half-way,
every tenant ends in the state Stripe holds, and its last entitlement effect matches that state.

Each seed builds random but valid subscription lives for several tenants (trials, upgrades, downgrades,
several changes in the same second, failed and recovered payments, pauses, renewals, cancellations),
shuffles all their events, re-delivers some, and makes one delivery fail once (retried at the end)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from billing_platform.catalog import load_catalog
from billing_platform.providers.factory import set_billing_provider
from billing_platform.providers.stripe import StripeBillingProvider
from billing_platform.settings import get_settings
from billing_platform.subscriptions.repository import SubscriptionRepository
from billing_platform.subscriptions.webhooks import WebhookProcessor
from tests.factories import stripe as sf
from tests.factories.handlers import load_handler
from tests.integration.subscriptions.test_webhook_stripe import RecordingEntitlements

PRICES = ("price_free_monthly", "price_pro_monthly", "price_pro_yearly", "price_enterprise_monthly")
SEEDS = (1, 7, 42, 1234, 20261125)


def live_story(rng: random.Random, api: sf.FakeStripeApi, tenant_id: str, start: int) -> list[dict[str, Any]]:
    story = sf.SubscriptionStory(api, tenant_id, start=start, step=rng.randint(0, 1800))
    events = [story.customer_created(), *story.subscribe(rng.choice(PRICES), trial_days=rng.choice((0, 0, 14)))]
    for _ in range(rng.randint(2, 9)):
        story.step = rng.choice((0, 1, 60, 600, 3600))  # 0: the next change lands in the same second
        status = story.sub["status"]  # type: ignore[index]
        if status == "canceled":
            break
        options: list[str] = ["change_price", "end"]
        if status in ("active", "trialing"):
            options += ["renew", "cancel_at_period_end", "trial_will_end" if status == "trialing" else "fail"]
        if status == "active":
            options += ["pause"]
        if status in ("past_due", "unpaid"):
            options += ["pay", "fail_final"]
        if status == "paused":
            options = ["resume", "end"]
        op = rng.choice(options)
        if op == "change_price":
            events.append(story.change_price(rng.choice(PRICES)))
        elif op == "end":
            events.append(story.end())
        elif op == "renew":
            if story.sub["cancel_at_period_end"]:  # type: ignore[index]
                events.append(story.end())
            else:
                events.extend(story.renew())
        elif op == "cancel_at_period_end":
            events.append(story.cancel_at_period_end())
        elif op == "trial_will_end":
            events.append(story.trial_will_end())
        elif op == "fail":
            events.extend(story.fail_payment())
        elif op == "fail_final":
            events.extend(story.fail_payment(final=True))
        elif op == "pay":
            events.extend(story.pay())
        elif op == "pause":
            events.append(story.pause())
        elif op == "resume":
            events.append(story.resume())
    return events


@pytest.fixture
def harness(moto_aws: dict[str, str], env: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any, RecordingEntitlements]]:
    env.setenv("STRIPE_WEBHOOK_SECRET", sf.WEBHOOK_SECRET)
    env.setenv("STRIPE_SECRET_KEY", sf.API_KEY)
    get_settings.cache_clear()
    http = sf.FakeStripeHTTPClient()
    provider = StripeBillingProvider(get_settings(), http_client=http)
    set_billing_provider(provider)
    handler = load_handler("stripe_webhook")
    recorder = RecordingEntitlements()
    handler.processor.use(WebhookProcessor(provider.sync, entitlements=recorder))
    yield handler, http, recorder
    set_billing_provider(None)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_shuffled_day_of_events_ends_in_stripes_state(
    harness: tuple[Any, sf.FakeStripeHTTPClient, RecordingEntitlements], seed: int
) -> None:
    handler, http, recorder = harness
    rng = random.Random(seed)
    day_start = int(time.time()) - 86_400
    tenants = [f"t_replay_{seed}_{i}" for i in range(5)]
    events: list[dict[str, Any]] = []
    for tenant in tenants:
        events += live_story(rng, http.api, tenant, day_start + rng.randint(0, 3600))
    events.append(sf.event("payment_intent.created", sf.fixture("price"), created=day_start))  # unknown type
    deliveries = events + rng.sample(events, k=max(1, len(events) // 5))  # duplicates
    rng.shuffle(deliveries)

    crash_at = rng.randrange(len(deliveries))
    retries: list[dict[str, Any]] = []
    outcomes: list[str] = []
    for index, evt in enumerate(deliveries):
        if index == crash_at:
            recorder.fail = 1
        status, body = sf.deliver(handler, evt)
        if status >= 500:
            assert recorder.fail == 0, "only the injected failure may fail"
            retries.append(evt)
            continue
        assert status == 200, body
        outcomes.append(body["outcome"])
        recorder.fail = 0
    for evt in retries:
        status, body = sf.deliver(handler, evt)
        assert status == 200, body

    assert "duplicate" in outcomes
    catalog = load_catalog()
    repo = SubscriptionRepository()
    subs = {sub["customer"]: sub for sub in http.api.subscriptions.values()}
    for tenant in tenants:
        customer_id = repo.customer_for_tenant(tenant) or next(
            c["id"] for c in http.api.customers.values() if c["metadata"].get("tenant_id") == tenant
        )
        truth = subs[customer_id]
        item = truth["items"]["data"][0]
        record = repo.get_subscription(tenant)
        assert record is not None, tenant
        plan = catalog.plan_for_price(item["price"]["id"])
        observed = (
            record.subscription_id,
            record.status,
            record.price_id,
            record.plan_id,
            record.current_period_start,
            record.current_period_end,
            record.cancel_at_period_end,
            record.trial_end,
        )
        expected = (
            truth["id"],
            truth["status"],
            item["price"]["id"],
            plan.id,
            datetime.fromtimestamp(item["current_period_start"], UTC),
            datetime.fromtimestamp(item["current_period_end"], UTC),
            truth["cancel_at_period_end"],
            datetime.fromtimestamp(truth["trial_end"], UTC) if truth["trial_end"] else None,
        )
        assert observed == expected, f"seed {seed}, {tenant}"

        last = [call for call in recorder.calls if call[1] == tenant][-1]
        if truth["status"] in ("active", "trialing") or (truth["status"] == "past_due" and plan.past_due_grace_days):
            assert last[0:3] == ("apply_plan", tenant, plan.id)
            assert last[3:6] == (*expected[4:6], truth["status"])
        elif truth["status"] == "canceled":
            assert last == ("revoke", tenant)
        else:
            assert last == ("suspend", tenant, f"subscription {truth['status']}")
