"""Stripe Billing meter events (sending usage) and the Stripe event log (listing events for replay).

The only code that sends meter events or lists events. `StripeMeterEvents` uses the real SDK
(`StripeClient.v1.billing.meter_events.create`, `StripeClient.v1.events.list`); `MockMeterEvents` keeps
them in memory for the local stack and tests, with Stripe's rules for `identifier`.

Exactly-once support: Stripe keeps a meter event's `identifier` unique for at least 24 hours and
rejects a second event with the same identifier (400 "An event already exists with identifier ...",
not retryable). The caller derives the identifier from what the event means, so that rejection proves
the usage was already delivered: `send` answers `MeterEventOutcome.DUPLICATE` instead of raising. The
identifier doubles as the request's `Idempotency-Key`, so a byte-identical resend within Stripe's
idempotency window is answered from Stripe's cache (the `Idempotent-Replayed` header) before the
identifier check is even reached. Every other Stripe error leaves as a typed `BillingProviderError`
(`providers.stripe.map_stripe_error`); 429 is retried here with backoff (the SDK retries 5xx itself).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from billing_platform.errors import BillingProviderError, ProviderInvalidRequestError
from billing_platform.settings import Settings, get_settings

# Stripe: identifiers and event names are at most 100 characters; values at most 15 significant digits.
MAX_IDENTIFIER_LENGTH = 100
MAX_VALUE_DIGITS = 15
RATE_LIMIT_ATTEMPTS = 4
EVENT_PAGE_SIZE = 100
DUPLICATE_CODES = frozenset({"duplicate_meter_event", "meter_event_duplicate"})


@dataclass(frozen=True)
class MeterEvent:
    """One usage report for a Stripe meter: `value` units for `customer_id` at `timestamp`."""

    event_name: str
    customer_id: str
    value: Decimal
    timestamp: datetime
    identifier: str

    def __post_init__(self) -> None:
        if not 0 < len(self.identifier) <= MAX_IDENTIFIER_LENGTH:
            raise ValueError("a meter event identifier is 1-100 characters")
        if not self.value.is_finite() or self.value <= 0:
            raise ValueError("a meter event value is a positive finite number")
        if self.timestamp.tzinfo is None:
            raise ValueError("a meter event timestamp is timezone-aware")

    def value_text(self) -> str:
        """The value as Stripe's payload wants it: a plain decimal string (no exponent)."""
        text = format(self.value.normalize(), "f")
        if len(text.replace(".", "").lstrip("0")) > MAX_VALUE_DIGITS:
            raise ProviderInvalidRequestError(
                f"meter event value {text} has more than {MAX_VALUE_DIGITS} significant digits",
                code="meter_value_too_precise",
            )
        return text

    def params(self) -> dict[str, Any]:
        return {
            "event_name": self.event_name,
            "identifier": self.identifier,
            "timestamp": int(self.timestamp.timestamp()),
            "payload": {"stripe_customer_id": self.customer_id, "value": self.value_text()},
        }


class MeterEventOutcome(StrEnum):
    CREATED = "created"  # Stripe accepted the event now
    REPLAYED = "replayed"  # Stripe answered a resend from its idempotency cache: created earlier
    DUPLICATE = "duplicate"  # Stripe already holds an event with this identifier: delivered earlier

    @property
    def delivered_before(self) -> bool:
        return self is not MeterEventOutcome.CREATED


class MeterEventSender(Protocol):
    """Sends meter events; a duplicate identifier is an outcome, every other failure a
    `BillingProviderError`."""

    def send(self, event: MeterEvent) -> MeterEventOutcome: ...


class StripeEventSource(Protocol):
    """Lists Stripe events (Stripe keeps them 30 days), oldest first, as Stripe-shaped dictionaries."""

    def list_events(
        self, since: datetime, *, until: datetime | None = None, types: Sequence[str] = ()
    ) -> Iterator[dict[str, Any]]: ...


def is_duplicate_identifier(code: str | None, message: str | None) -> bool:
    """Stripe's answer to a meter event whose identifier it already holds."""
    if code in DUPLICATE_CODES:
        return True
    text = (message or "").lower()
    return "already exists" in text and "identifier" in text


class StripeMeterEvents:
    """Meter events and event listing through the real stripe SDK (`MeterEventSender`, `StripeEventSource`)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        client: Any = None,
        http_client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings or get_settings()
        self._client = client
        self._http_client = http_client
        self._sleep = sleep

    @property
    def client(self) -> Any:
        if self._client is None:
            from billing_platform.providers.stripe import build_stripe_client

            self._client = build_stripe_client(self._settings, self._http_client)
        return self._client

    def _call(self, fn: Callable[[], Any]) -> Any:
        from billing_platform.providers.stripe import call_stripe

        return call_stripe(fn, self._sleep, RATE_LIMIT_ATTEMPTS)

    def send(self, event: MeterEvent) -> MeterEventOutcome:
        params = event.params()
        # The identifier is the idempotency key too: the SDK's own retries and our resends share it.
        options = {"idempotency_key": f"meter-{event.identifier}"}
        try:
            created = self._call(lambda: self.client.v1.billing.meter_events.create(params=params, options=options))
        except BillingProviderError as exc:
            if exc.http_status in (400, 409) and is_duplicate_identifier(exc.provider_code, exc.message):
                return MeterEventOutcome.DUPLICATE
            # map_stripe_error keeps Stripe's message only as user_message; look at the cause too.
            cause = exc.__cause__
            if cause is not None and is_duplicate_identifier(getattr(cause, "code", None), str(cause)):
                return MeterEventOutcome.DUPLICATE
            raise
        response = getattr(created, "last_response", None)
        headers: Mapping[str, str] = getattr(response, "headers", None) or {}
        replayed = str(headers.get("Idempotent-Replayed", headers.get("idempotent-replayed", ""))).lower() == "true"
        return MeterEventOutcome.REPLAYED if replayed else MeterEventOutcome.CREATED

    def list_events(
        self, since: datetime, *, until: datetime | None = None, types: Sequence[str] = ()
    ) -> Iterator[dict[str, Any]]:
        created: dict[str, int] = {"gte": int(since.timestamp())}
        if until is not None:
            created["lte"] = int(until.timestamp())
        params: dict[str, Any] = {"created": created, "limit": EVENT_PAGE_SIZE}
        if types:
            params["types"] = list(types)
        page = self._call(lambda: self.client.v1.events.list(params=params))
        # Stripe lists newest first; replay wants oldest first, so the window is gathered, then sorted.
        events = self._call(lambda: [event.to_dict() for event in page.auto_paging_iter()])
        events.sort(key=lambda e: (int(e.get("created", 0)), str(e.get("id"))))
        return iter(events)


class MockMeterEvents:
    """In-memory meter events with Stripe's identifier rule (a second event with a known identifier
    is rejected as a duplicate), and an in-memory event log to list. Thread-safe."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.meter_events: list[dict[str, Any]] = []
        self._identifiers: set[str] = set()
        self.stripe_events: list[dict[str, Any]] = []

    def send(self, event: MeterEvent) -> MeterEventOutcome:
        params = event.params()
        with self._lock:
            if event.identifier in self._identifiers:
                return MeterEventOutcome.DUPLICATE
            self._identifiers.add(event.identifier)
            self.meter_events.append(
                {**params, "object": "billing.meter_event", "created": int(self._clock()), "livemode": False}
            )
        return MeterEventOutcome.CREATED

    def total(self, event_name: str, customer_id: str) -> Decimal:
        """Sum of accepted values for one meter and customer (what Stripe would bill)."""
        with self._lock:
            return sum(
                (
                    Decimal(e["payload"]["value"])
                    for e in self.meter_events
                    if e["event_name"] == event_name and e["payload"]["stripe_customer_id"] == customer_id
                ),
                Decimal(0),
            )

    def record_event(self, event: Mapping[str, Any]) -> None:
        """Add a Stripe event to the log (the mock billing provider's event sink can point here)."""
        with self._lock:
            self.stripe_events.append(dict(event))

    def list_events(
        self, since: datetime, *, until: datetime | None = None, types: Sequence[str] = ()
    ) -> Iterator[dict[str, Any]]:
        low = int(since.timestamp())
        high = int(until.timestamp()) if until is not None else None
        with self._lock:
            chosen = [
                e
                for e in self.stripe_events
                if int(e["created"]) >= low
                and (high is None or int(e["created"]) <= high)
                and (not types or e["type"] in types)
            ]
        return iter(sorted(chosen, key=lambda e: (int(e["created"]), str(e["id"]))))
