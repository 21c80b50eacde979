"""Use case: one bus event (as the EventBridge rule put it on the webhook queue) -> a signed POST to each of
its tenant's endpoints that wants it and has not had it yet.

An endpoint that answers 2xx is recorded (DELIVERY item) and never sent that event again; any other
answer, a timeout or a refused connection leaves the message failed, and the handler makes it come back
after `retry_delay(receive count)` (30 s doubling to 6 h; the DLQ after resources.WEBHOOK_QUEUE's
max_receive_count, about 14 h in all). Receivers dedupe on the `id` of the body (the stable event id), as
with Stripe: a crash between a 2xx and its record sends that endpoint the event again."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from billing_platform.settings import Settings, get_settings
from billing_platform.tenant_webhooks.repository import WebhookEndpointRepository
from billing_platform.tenant_webhooks.signing import SIGNATURE_HEADER, signature_header

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 5.0
# Endpoints not tried within this much of a message's handling count as failed (retried with backoff), so a
# tenant with many slow endpoints cannot run the function into its timeout (resources.WEBHOOK_DELIVERY).
DELIVERY_BUDGET_SECONDS = 20.0
FIRST_RETRY_SECONDS = 30
MAX_RETRY_SECONDS = 6 * 3600
USER_AGENT = "billing-platform-webhooks/1"


def retry_delay(receive_count: int) -> int:
    """Seconds before the next attempt after the `receive_count`-th failed one."""
    return int(min(FIRST_RETRY_SECONDS * 2 ** max(receive_count - 1, 0), MAX_RETRY_SECONDS))


class Transport(Protocol):
    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        """POST and return the HTTP status; raise OSError when no answer came."""
        ...


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect would send the signed body somewhere the operator did not register.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class UrllibTransport:
    """The standard library's HTTP client: no extra dependency in the Lambda layer."""

    def __init__(self) -> None:
        self._opener = urllib.request.build_opener(_NoRedirect)

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        if not url.startswith(("https://", "http://")):
            raise OSError(f"not an http(s) URL: {url[:16]}")
        # The scheme is checked just above (and at registration, billing_platform.tenant_webhooks.service).
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with self._opener.open(request, timeout=timeout) as response:
                response.read(1024)
                return int(response.status)
        except urllib.error.HTTPError as err:
            return int(err.code)


def webhook_body(envelope: dict[str, Any]) -> bytes:
    """The JSON a tenant receives: Stripe's event shape (`id`, `type`, `created`, `data`)."""
    detail = envelope["detail"]
    occurred = datetime.fromisoformat(str(detail["occurred_at"]).replace("Z", "+00:00"))
    event = {
        "id": detail["event_id"],
        "type": envelope["detail-type"],
        "created": int(occurred.timestamp()),
        "data": detail,
    }
    return json.dumps(event, separators=(",", ":"), sort_keys=True).encode()


@dataclass
class DeliveryOutcome:
    delivered: list[str] = field(default_factory=list)  # endpoint ids that answered 2xx now
    already: list[str] = field(default_factory=list)  # endpoint ids that had it before
    failed: dict[str, str] = field(default_factory=dict)  # endpoint id -> why

    @property
    def done(self) -> bool:
        return not self.failed


class WebhookDeliveryService:
    def __init__(
        self,
        settings: Settings | None = None,
        repository: WebhookEndpointRepository | None = None,
        transport: Transport | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings or get_settings()
        self._repository = repository or WebhookEndpointRepository(self._settings)
        self._transport = transport or UrllibTransport()
        self._clock = clock

    def deliver(self, envelope: dict[str, Any]) -> DeliveryOutcome:
        """Send one bus event to every endpoint of its tenant that wants it and has not had it."""
        detail = envelope["detail"]
        tenant_id, event_id, detail_type = str(detail["tenant_id"]), str(detail["event_id"]), envelope["detail-type"]
        outcome = DeliveryOutcome()
        targets = [(e, s) for e, s in self._repository.with_secrets(tenant_id) if e.wants(detail_type)]
        done = self._repository.delivered(tenant_id, event_id, [e.endpoint_id for e, _ in targets])
        body = webhook_body(envelope)
        started = self._clock()
        for endpoint, secret in targets:
            if endpoint.endpoint_id in done:
                outcome.already.append(endpoint.endpoint_id)
                continue
            now = self._clock()
            if (now - started).total_seconds() > DELIVERY_BUDGET_SECONDS - REQUEST_TIMEOUT_SECONDS:
                outcome.failed[endpoint.endpoint_id] = "not tried: this attempt's time budget is spent"
                continue
            headers = {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                SIGNATURE_HEADER: signature_header(secret, int(now.timestamp()), body),
                "Billing-Event-Id": event_id,
            }
            try:
                status = self._transport.post(endpoint.url, body, headers, REQUEST_TIMEOUT_SECONDS)
            except OSError as err:
                outcome.failed[endpoint.endpoint_id] = f"no answer: {type(err).__name__}"
                continue
            if 200 <= status < 300:
                self._repository.mark_delivered(tenant_id, event_id, endpoint.endpoint_id, status, self._clock())
                outcome.delivered.append(endpoint.endpoint_id)
            else:
                outcome.failed[endpoint.endpoint_id] = f"HTTP {status}"
        if outcome.failed:
            logger.warning(
                "webhook delivery failed; retried with backoff",
                extra={"tenant_id": tenant_id, "event_id": event_id, "failed": outcome.failed},
            )
        return outcome
