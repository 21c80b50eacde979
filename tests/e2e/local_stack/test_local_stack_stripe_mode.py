"""`make dev` with a developer's Stripe test-mode key and the Stripe CLI's webhook secret, offline: the stack
keeps STRIPE_SECRET_KEY / STRIPE_WEBHOOK_SECRET as given, the webhook route verifies with that secret (and
refuses a secret the stack would have generated), and provider calls go through the real stripe SDK, here
to a Stripe-shaped fake on 127.0.0.1 (STRIPE_API_BASE), never to the in-memory mock."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.factories import stripe as sf
from tests.factories.local_stack_process import in_process

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local_stack_stripe_mode")]

# What `stripe listen` prints and a test-mode key: made up here, shaped like Stripe's.
GIVEN_WEBHOOK_SECRET = "whsec_" + "cli0" * 8
GIVEN_SECRET_KEY = "sk_test_" + "devkey0" * 4


class FakeStripeServer(ThreadingHTTPServer):
    """`FakeStripeApi` over HTTP: what the SDK sees at STRIPE_API_BASE. Records each request."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FakeStripeHandler)
        self.api = sf.FakeStripeApi()
        self.requests: list[tuple[str, str, str]] = []  # method, path, Authorization

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _FakeStripeHandler(BaseHTTPRequestHandler):
    server: FakeStripeServer

    def _answer(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        form = self.rfile.read(length).decode() if length else ""
        params = dict(parse_qsl(url.query or form, keep_blank_values=True))
        self.server.requests.append((self.command, url.path, self.headers.get("Authorization", "")))
        status, body = self.server.api.handle(self.command.lower(), url.path, params)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Request-Id", "req_fake")
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class StripeModeStack:
    stack: Any
    stripe: FakeStripeServer


@pytest.fixture(scope="module")
def stripe_mode() -> Iterator[StripeModeStack]:
    from local_stack.stack import StackOptions

    fake = FakeStripeServer()
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    options = StackOptions(
        pollers=False,
        warm=False,
        timeout_scale=3.0,  # wall-clock timeouts on shared test runners (see LocalStackProcess)
        log_level="WARNING",
        stripe_secret_key=GIVEN_SECRET_KEY,
        stripe_webhook_secret=GIVEN_WEBHOOK_SECRET,
    )
    try:
        with in_process(options, {"STRIPE_API_BASE": fake.url}) as stack:
            yield StripeModeStack(stack, fake)
    finally:
        fake.shutdown()
        fake.server_close()


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def deliver(stack: Any, secret: str) -> tuple[int, Any]:
    """A Stripe event as `stripe listen` forwards it: pretty JSON, signed with `secret`."""
    evt = sf.event("customer.created", sf.customer(tenant_id="t_cli"), created=int(time.time()))
    payload = sf.payload_of(evt)
    headers = {"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": sf.sign(payload, secret)}
    return post(f"{stack.base_url}/v1/webhooks/stripe", payload.encode(), headers)


def test_the_given_secrets_are_kept_and_the_banner_says_stripe_test_mode(stripe_mode: StripeModeStack) -> None:
    stack = stripe_mode.stack
    assert stack.env["STRIPE_WEBHOOK_SECRET"] == GIVEN_WEBHOOK_SECRET
    assert stack.env["STRIPE_SECRET_KEY"] == GIVEN_SECRET_KEY
    assert stack.env["BILLING_PROVIDER"] == "stripe"
    banner = stack.banner()
    assert "Stripe test mode" in banner
    assert "your STRIPE_WEBHOOK_SECRET" in banner
    assert GIVEN_SECRET_KEY not in banner
    assert GIVEN_WEBHOOK_SECRET not in banner


def test_the_webhook_route_accepts_the_given_secret_and_refuses_a_generated_one(
    stripe_mode: StripeModeStack,
) -> None:
    status, body = deliver(stripe_mode.stack, GIVEN_WEBHOOK_SECRET)
    assert status == 200, body
    generated_like = "whsec_local_" + "0f" * 16  # what the stack makes when no secret is given
    status, body = deliver(stripe_mode.stack, generated_like)
    assert status == 400, body


def test_with_a_key_set_provider_calls_go_through_the_real_sdk(stripe_mode: StripeModeStack) -> None:
    stack = stripe_mode.stack
    headers = {"Authorization": f"Bearer {stack.operator_token}", "Content-Type": "application/json"}
    body = json.dumps({"tenant_id": "t_cli_api", "email": "cli@example.com"}).encode()
    status, customer = post(f"{stack.base_url}/v1/customers", body, headers)
    assert status == 201, customer
    assert customer["id"] in stripe_mode.stripe.api.customers, "the customer was not made through the SDK"
    # The customer is created, then read back whole (the blocking create answers only its id).
    created = [r for r in stripe_mode.stripe.requests if r[:2] == ("POST", "/v1/customers")]
    assert len(created) == 1, stripe_mode.stripe.requests
    _method, _path, authorization = created[0]
    assert authorization == f"Bearer {GIVEN_SECRET_KEY}"


def test_a_live_key_is_refused_before_anything_starts() -> None:
    from local_stack.stack import StackOptions

    with pytest.raises(ValueError, match="test-mode keys only"):
        StackOptions(stripe_secret_key="sk_live_" + "x" * 24)
