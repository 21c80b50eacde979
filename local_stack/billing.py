"""The local stack's Stripe: the in-memory `MockBillingProvider`, installed as the process-wide billing
provider, whose events are signed as Stripe signs them and POSTed to the local /v1/webhooks/stripe.

So locally, as deployed, the operator API only asks the provider for changes, and the tenant's
subscription record and entitlements follow from the webhooks: `POST /v1/subscriptions` ends with
the tenant's plan provisioned a moment later. Deliveries run on one background thread in the order the
events were made (the request that caused them does not wait), and a delivery answered with a non-2xx
status is retried with backoff, as Stripe retries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from billing_platform.providers.factory import set_billing_provider
from billing_platform.providers.mock import MockBillingProvider

log = logging.getLogger("local_stack.billing")

WEBHOOK_PATH = "/v1/webhooks/stripe"
RETRY_DELAYS_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)


def stripe_signature(payload: str, secret: str, timestamp: int) -> str:
    """`Stripe-Signature` as Stripe computes it: HMAC-SHA256 of `"{t}.{payload}"` with the secret."""
    digest = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass
class Delivery:
    event_id: str
    event_type: str
    status: int | None
    attempts: int


@dataclass
class WebhookSender:
    """Signs and POSTs events to `url`, one at a time, in order, retrying failures with backoff."""

    url: str
    secret: str
    delays: tuple[float, ...] = RETRY_DELAYS_SECONDS
    clock: Callable[[], float] = time.time
    deliveries: list[Delivery] = field(default_factory=list)
    _queue: queue.Queue[dict[str, Any] | None] = field(default_factory=queue.Queue)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def enqueue(self, event: dict[str, Any]) -> None:
        """The provider's event sink: returns at once."""
        self._queue.put(event)

    def start(self) -> WebhookSender:
        self._thread = threading.Thread(target=self._run, name="local-stripe-webhooks", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event was delivered (or given up on)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.02)
        return False

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            try:
                if event is None:
                    return
                self._deliver(event)
            finally:
                self._queue.task_done()

    def _deliver(self, event: dict[str, Any]) -> None:
        payload = json.dumps(event, indent=2)
        status: int | None = None
        attempts = 0
        for delay in (0.0, *self.delays):
            if delay and self._stop.wait(delay):
                break
            attempts += 1
            status = self._post(payload)
            if status is not None and 200 <= status < 300:
                break
            log.warning("webhook %s (%s) answered %s; retrying", event["id"], event["type"], status)
        self.deliveries.append(Delivery(event["id"], event["type"], status, attempts))

    def _post(self, payload: str) -> int | None:
        # Signed at each attempt, as Stripe does: a retry carries a fresh timestamp.
        signature = stripe_signature(payload, self.secret, int(self.clock()))
        request = urllib.request.Request(  # noqa: S310 - a local http URL built by the stack
            self.url,
            data=payload.encode(),
            method="POST",
            headers={"Content-Type": "application/json; charset=utf-8", "Stripe-Signature": signature},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError as exc:
            log.warning("webhook delivery failed: %s", exc)
            return None


def start(base_url: str, env: Mapping[str, str]) -> Callable[[], None] | None:
    """Install the webhook-sending mock provider for this process (a `local_stack.hooks` hook)."""
    if env.get("BILLING_PROVIDER") == "stripe":
        log.info("Stripe test mode: webhooks come from Stripe (stripe listen --forward-to ...%s)", WEBHOOK_PATH)
        return None
    secret = env.get("STRIPE_WEBHOOK_SECRET")
    if not secret:
        log.warning("STRIPE_WEBHOOK_SECRET is not set: the local billing provider sends no webhooks")
        return None
    sender = WebhookSender(base_url.rstrip("/") + WEBHOOK_PATH, secret).start()
    provider = MockBillingProvider(event_sink=sender.enqueue)
    set_billing_provider(provider)
    log.info("local billing provider: signed webhooks to %s", sender.url)

    def stop() -> None:
        sender.stop()
        set_billing_provider(None)

    return stop
