"""A top-up webhook delivered twice and out of order creates one grant, on DynamoDB Local (moto is not
atomic under threads): the checkout session and the invoice of one purchase, each delivered several
times to separate containers at once, in a shuffled order, with an older replay among them."""

from __future__ import annotations

import random
import time
from decimal import Decimal

import pytest

from billing_platform.audit.log import AuditLog
from billing_platform.grants.repository import GrantRepository
from billing_platform.settings import get_settings
from billing_platform.subscriptions.webhooks import parse_event
from tests.factories import stripe as sf
from tests.integration.subscriptions.test_webhook_concurrency import container, run_together

pytestmark = [pytest.mark.ddblocal, pytest.mark.xdist_group("ddblocal")]

TOPUP = "price_topup_tokens_1m"


@pytest.fixture
def api(ddb_local_tables: dict[str, str], env: pytest.MonkeyPatch) -> sf.FakeStripeApi:
    env.setenv("STRIPE_SECRET_KEY", sf.API_KEY)
    get_settings.cache_clear()
    return sf.FakeStripeApi()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_one_purchase_delivered_many_times_out_of_order_makes_one_grant(api: sf.FakeStripeApi, seed: int) -> None:
    tenant_id = f"t_topup_{seed}"
    customer = sf.customer(tenant_id=tenant_id)
    api.customers[customer["id"]] = customer
    now = int(time.time())
    invoice = sf.topup_invoice(customer["id"], TOPUP, created=now, quantity=2)
    session = sf.checkout_session(
        customer["id"], None, tenant_id=tenant_id, created=now, mode="payment", invoice_id=invoice["id"]
    )
    paid = sf.event("invoice.paid", invoice, created=now + 1)
    completed = sf.event("checkout.session.completed", session, created=now + 1)
    # Each event twice, plus Stripe's replay of the paid invoice under a new event id (a resend).
    resent = sf.event("invoice.paid", invoice, created=now + 30)
    deliveries = [paid, paid, completed, completed, resent, resent]
    random.Random(seed).shuffle(deliveries)
    events = [parse_event(sf.payload_of(e)) for e in deliveries]
    processors = [container(api)[0] for _ in events]

    results = run_together([lambda p=p, e=e: p.process(e) for p, e in zip(processors, events, strict=True)])

    grants = GrantRepository().list(tenant_id)
    assert [(g.resource_type, g.amount, g.remaining) for g in grants] == [
        ("tokens", Decimal(2_000_000), Decimal(2_000_000))
    ], results
    granted = [r for r in results if getattr(r, "outcome", "").startswith("topup_granted")]
    assert len(granted) == 1, results
    assert len([e for e in AuditLog().list(tenant_id) if e.action == "grant.topup"]) == 1
    # Whatever was refused in flight (409 while another container held the event) was not applied; its
    # redelivery is a duplicate and grants nothing more.
    for event in events:
        later = container(api)[0].process(event)
        assert later.outcome in ("duplicate", "topup_duplicate", "topup_via_invoice"), later
    assert len(GrantRepository().list(tenant_id)) == 1
