"""The local stack's billing hook: the mock provider's events reach the webhook URL signed as Stripe
signs them (verified here with the stripe SDK), in order, and a failed delivery is retried."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import stripe

from billing_platform.providers.factory import get_billing_provider, set_billing_provider
from billing_platform.providers.mock import MockBillingProvider
from local_stack import billing

SECRET = "whsec_local_sender_test_0123456789"


class Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.fail_first = 1

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        try:
            event = stripe.Webhook.construct_event(body, self.headers["Stripe-Signature"], SECRET, tolerance=300)
        except stripe.SignatureVerificationError:
            self.send_response(400)
        else:
            if self.server.fail_first:
                self.server.fail_first -= 1
                self.send_response(500)
            else:
                self.server.received.append((self.path, event.to_dict()))
                self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_hook_installs_a_provider_whose_events_arrive_signed_in_order(receiver: Receiver) -> None:
    stop = billing.start(receiver.url, {"STRIPE_WEBHOOK_SECRET": SECRET})
    assert stop is not None
    try:
        provider = get_billing_provider()
        assert isinstance(provider, MockBillingProvider)
        customer_id = provider.sync.create_customer("t_local", "l@example.com")
        sub = provider.sync.create_subscription(customer_id, "price_pro_monthly")
        sender = provider.mock.event_sink.__self__  # type: ignore[union-attr]
        assert sender.drain(timeout=15)
    finally:
        stop()
    assert [(path, event["type"]) for path, event in receiver.received] == [
        ("/v1/webhooks/stripe", "customer.created"),
        ("/v1/webhooks/stripe", "customer.subscription.created"),
        ("/v1/webhooks/stripe", "invoice.paid"),
    ]
    assert receiver.received[1][1]["data"]["object"]["id"] == sub.id
    first = sender.deliveries[0]
    assert (first.status, first.attempts) == (200, 2)  # the first answer was a 500: retried
    set_billing_provider(None)


def test_hook_without_a_webhook_secret_installs_nothing() -> None:
    assert billing.start("http://127.0.0.1:9", {}) is None


def test_hook_in_stripe_test_mode_installs_no_mock() -> None:
    # Events then come from Stripe itself (`stripe listen --forward-to`), signed with the developer's secret.
    assert billing.start("http://127.0.0.1:9", {"BILLING_PROVIDER": "stripe", "STRIPE_WEBHOOK_SECRET": SECRET}) is None
