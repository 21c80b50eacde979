"""Stripe top-ups become grants exactly once per Stripe object line: signed, fixture-shaped events through
the real webhook handler against moto, the real stripe SDK listing checkout line items over the fake
transport. Retries, a second event for the same purchase, the checkout/invoice pair of one purchase in
either order, and an invoice that arrives before its customer is bound all end in one grant."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing_platform.audit.log import AuditLog
from billing_platform.grants.models import GrantSource, grant_id_for_source
from billing_platform.grants.repository import GrantRepository
from tests.factories import stripe as sf
from tests.integration.subscriptions.test_webhook_stripe import Harness, hook  # noqa: F401  (fixture)

TOPUP = "price_topup_executions_1k"


def grants_of(tenant_id: str) -> list[Any]:
    return GrantRepository().list(tenant_id)


def topup_audits(tenant_id: str) -> list[Any]:
    return [e for e in AuditLog().list(tenant_id) if e.action == "grant.topup"]


def known_customer(h: Harness, tenant_id: str | None) -> str:
    obj = sf.customer(tenant_id=tenant_id)
    h.api.customers[obj["id"]] = obj
    return str(obj["id"])


def paid_checkout(h: Harness, customer_id: str, tenant_id: str | None, *, quantity: int = 1, **kw: Any) -> Any:
    now = int(time.time())
    session = sf.checkout_session(customer_id, None, tenant_id=tenant_id, created=now, mode="payment", **kw)
    h.api.line_items[session["id"]] = [sf.checkout_line_item(TOPUP, quantity=quantity)]
    return session


@pytest.fixture
def h(hook: Harness) -> Harness:  # noqa: F811
    return hook


def test_paid_checkout_of_a_topup_price_creates_one_grant_with_the_catalog_terms(h: Harness) -> None:
    customer_id = known_customer(h, "t_buyer")
    session = paid_checkout(h, customer_id, "t_buyer", quantity=2)
    evt = sf.event("checkout.session.completed", session, created=session["created"])

    status, body = h.deliver(evt)

    assert (status, body["outcome"], body["tenant_id"]) == (200, "topup_granted:1", "t_buyer")
    [grant] = grants_of("t_buyer")
    line_id = h.api.line_items[session["id"]][0]["id"]
    assert grant.grant_id == grant_id_for_source(f"{session['id']}:{line_id}")
    assert (grant.resource_type, grant.amount, grant.remaining, grant.priority) == (
        "executions",
        Decimal(2000),
        Decimal(2000),
        50,
    )
    assert grant.valid_until == datetime.fromtimestamp(evt["created"], UTC) + timedelta(days=365)
    assert (grant.source, grant.price_id) == (GrantSource.STRIPE_CHECKOUT, TOPUP)
    [entry] = topup_audits("t_buyer")
    assert (entry.actor, entry.target, entry.request_id) == ("stripe:webhook", session["id"], evt["id"])


def test_redelivery_and_a_second_event_for_the_same_session_grant_nothing_more(h: Harness) -> None:
    customer_id = known_customer(h, "t_twice")
    session = paid_checkout(h, customer_id, "t_twice")
    completed = sf.event("checkout.session.completed", session, created=session["created"])
    succeeded = sf.event("checkout.session.async_payment_succeeded", session, created=session["created"] + 5)

    outcomes = [h.deliver(e)[1]["outcome"] for e in (completed, completed, succeeded, completed)]

    assert outcomes == ["topup_granted:1", "duplicate", "topup_duplicate", "duplicate"]
    assert [g.amount for g in grants_of("t_twice")] == [Decimal(1000)]
    assert len(topup_audits("t_twice")) == 1


@pytest.mark.parametrize("invoice_first", [True, False])
def test_checkout_with_an_invoice_and_that_invoice_grant_once_in_either_order(h: Harness, invoice_first: bool) -> None:
    customer_id = known_customer(h, "t_pair")
    now = int(time.time())
    invoice = sf.topup_invoice(customer_id, TOPUP, created=now, quantity=3)
    session = paid_checkout(h, customer_id, "t_pair", invoice_id=invoice["id"])
    events = [
        sf.event("invoice.paid", invoice, created=now + 1),
        sf.event("checkout.session.completed", session, created=now + 1),
    ]
    if not invoice_first:
        events.reverse()

    outcomes = [h.deliver(e)[1]["outcome"] for e in events + events]

    firsts = ["topup_granted:1", "topup_via_invoice"] if invoice_first else ["topup_via_invoice", "topup_granted:1"]
    assert outcomes == [*firsts, "duplicate", "duplicate"]
    [grant] = grants_of("t_pair")
    assert (grant.amount, grant.source) == (Decimal(3000), GrantSource.STRIPE_INVOICE)
    assert grant.source_id == f"{invoice['id']}:{invoice['lines']['data'][0]['id']}"
    assert len(topup_audits("t_pair")) == 1


def test_a_topup_invoice_before_its_customer_is_bound_is_retried_not_dropped(h: Harness) -> None:
    customer_id = known_customer(h, None)  # no tenant in Stripe's metadata: only the checkout names it
    now = int(time.time())
    invoice = sf.topup_invoice(customer_id, TOPUP, created=now)
    session = paid_checkout(h, customer_id, "t_late", invoice_id=invoice["id"])
    paid = sf.event("invoice.paid", invoice, created=now + 1)

    status, body = h.deliver(paid)
    assert (status, body["code"]) == (503, "topup_tenant_unknown")
    assert grants_of("t_late") == []

    assert h.deliver(sf.event("checkout.session.completed", session, created=now + 2))[1]["outcome"] == (
        "topup_via_invoice"
    )
    status, body = h.deliver(paid)  # Stripe's retry
    assert (status, body["outcome"], body["tenant_id"]) == (200, "topup_granted:1", "t_late")
    assert [g.amount for g in grants_of("t_late")] == [Decimal(1000)]


def test_an_unpaid_checkout_grants_only_when_its_payment_succeeds(h: Harness) -> None:
    customer_id = known_customer(h, "t_async")
    session = paid_checkout(h, customer_id, "t_async", payment_status="unpaid")

    pending = h.deliver(sf.event("checkout.session.completed", session, created=session["created"]))[1]
    assert pending["outcome"] == "topup_payment_pending"
    assert grants_of("t_async") == []

    session["payment_status"] = "paid"
    done = h.deliver(sf.event("checkout.session.async_payment_succeeded", session, created=session["created"] + 60))
    assert done[1]["outcome"] == "topup_granted:1"
    assert len(grants_of("t_async")) == 1


def test_a_one_off_payment_for_a_price_that_is_no_topup_grants_nothing(h: Harness) -> None:
    customer_id = known_customer(h, "t_other")
    now = int(time.time())
    session = sf.checkout_session(customer_id, None, tenant_id="t_other", created=now, mode="payment")
    h.api.line_items[session["id"]] = [sf.checkout_line_item("price_pro_monthly")]
    invoice = sf.topup_invoice(customer_id, "price_something_else", created=now)

    first = h.deliver(sf.event("checkout.session.completed", session, created=now))[1]
    second = h.deliver(sf.event("invoice.paid", invoice, created=now))[1]

    assert (first["outcome"], second["outcome"]) == ("not_a_topup", "no_subscription")
    assert grants_of("t_other") == []


def test_the_mock_providers_topup_checkout_grants_through_the_same_processor(moto_aws: dict[str, str]) -> None:
    from billing_platform.providers.mock import MockBillingProvider
    from billing_platform.subscriptions.models import StripeEvent
    from billing_platform.subscriptions.webhooks import WebhookProcessor
    from tests.integration.subscriptions.test_webhook_stripe import RecordingEntitlements

    provider = MockBillingProvider()
    customer_id = provider.mock.create_customer("t_mock", "ada@example.com")
    session_id = provider.mock.buy_topup(customer_id, "price_topup_tokens_1m", quantity=3)
    processor = WebhookProcessor(provider.mock, entitlements=RecordingEntitlements())

    outcomes = [processor.process(StripeEvent.model_validate(e)).outcome for e in provider.mock.events]

    assert outcomes[-1] == "topup_granted:1"
    [grant] = grants_of("t_mock")
    assert (grant.amount, grant.source_id.split(":")[0]) == (Decimal(3_000_000), session_id)
