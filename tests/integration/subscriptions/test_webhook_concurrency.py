"""Exactly once under concurrency, on DynamoDB Local (moto is not atomic under threads): Stripe may
deliver the same event to several Lambda containers at once, and different events of one tenant race.
Each thread below is its own container (its own processor, provider client and recorder)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from billing_platform.errors import BillingError, EventInProgress
from billing_platform.providers.stripe import StripeBillingProvider
from billing_platform.settings import get_settings
from billing_platform.subscriptions.repository import SubscriptionRepository
from billing_platform.subscriptions.webhooks import WebhookProcessor, parse_event
from tests.factories import stripe as sf
from tests.integration.subscriptions.test_webhook_stripe import RecordingEntitlements

pytestmark = pytest.mark.ddblocal

THREADS = 8


def run_together(jobs: list[Callable[[], Any]]) -> list[Any]:
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = jobs[index]()
        except (EventInProgress, BillingError) as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def container(api: sf.FakeStripeApi) -> tuple[WebhookProcessor, RecordingEntitlements]:
    http = sf.FakeStripeHTTPClient(api)
    recorder = RecordingEntitlements()
    provider = StripeBillingProvider(get_settings(), http_client=http)
    return WebhookProcessor(provider.sync, entitlements=recorder), recorder


@pytest.fixture
def api(ddb_local_tables: dict[str, str], env: pytest.MonkeyPatch) -> sf.FakeStripeApi:
    env.setenv("STRIPE_SECRET_KEY", sf.API_KEY)
    get_settings.cache_clear()
    return sf.FakeStripeApi()


def test_one_event_delivered_to_many_containers_at_once_is_applied_once(api: sf.FakeStripeApi) -> None:
    story = sf.SubscriptionStory(api, "t_conc", start=int(time.time()) - 600)
    created, _ = story.subscribe("price_pro_monthly")
    event = parse_event(sf.payload_of(created))
    containers = [container(api) for _ in range(THREADS)]

    results = run_together([lambda p=p: p.process(event) for p, _ in containers])

    applied = [r for r in results if getattr(r, "outcome", None) == "applied:active"]
    others = [r for r in results if r not in applied]
    assert len(applied) == 1, results
    # The rest either saw it done (duplicate) or in flight (409: Stripe redelivers later).
    assert all(isinstance(r, EventInProgress) or r.outcome == "duplicate" for r in others), results
    assert sum(len(rec.calls) for _, rec in containers) == 1
    record = SubscriptionRepository().get_subscription("t_conc")
    assert record is not None
    assert record.revision == 1


def test_racing_events_of_one_tenant_end_in_the_newest_state(api: sf.FakeStripeApi) -> None:
    story = sf.SubscriptionStory(api, "t_race", start=int(time.time()) - 600)
    created, _ = story.subscribe("price_free_monthly")
    prices = ("price_pro_monthly", "price_enterprise_monthly", "price_free_monthly", "price_enterprise_yearly")
    changes = [story.change_price(price) for price in prices]
    newest = story.change_price("price_pro_yearly")
    events = [parse_event(sf.payload_of(e)) for e in (created, *changes, newest)]
    containers = [container(api) for _ in events]

    results = run_together([lambda p=p, e=e: p.process(e) for (p, _), e in zip(containers, events, strict=True)])

    assert not [r for r in results if isinstance(r, Exception)], results
    record = SubscriptionRepository().get_subscription("t_race")
    assert record is not None
    assert (record.price_id, record.version) == ("price_pro_yearly", newest["created"])
