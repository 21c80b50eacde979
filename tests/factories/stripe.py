"""Stripe, faked at the wire: objects and events in Stripe's own shapes, webhook signatures as Stripe
computes them, and an HTTP transport for the real `stripe` SDK.

* Objects start from Stripe's published examples (`stripe_fixtures3.json`: an unchanged subset of
  stripe/openapi `fixtures3.json`) and override only the fields a scenario sets, so every payload has
  the full shape Stripe sends, not just the fields the code happens to read.
* `sign` / `webhook_request`: `Stripe-Signature: t=<ts>,v1=hex(HMAC-SHA256(secret, f"{t}.{payload}"))`
  on the exact raw body, wrapped in a real API Gateway proxy event (`tests.factories.apigw.api_event`).
* `FakeStripeHTTPClient`: a `stripe.HTTPClient` subclass the real SDK sends its requests to. It records
  every request (headers included, so idempotency keys can be asserted), answers from a small in-memory
  Stripe (`FakeStripeApi`), replays a POST with a known `Idempotency-Key` as Stripe does, and injects
  faults (HTTP errors in Stripe's error body shape with a `Request-Id`, connection errors). The SDK's
  own backoff sleeps are recorded and skipped.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe
from requests.structures import CaseInsensitiveDict

from tests.factories.apigw import api_event

FIXTURES_PATH = Path(__file__).with_name("stripe_fixtures3.json")
WEBHOOK_SECRET = "whsec_test_0123456789abcdef0123456789abcdef"
API_KEY = "sk_test_fake_0123456789abcdef"
WEBHOOK_PATH = "/v1/webhooks/stripe"

_ids = itertools.count(1)


def next_id(prefix: str) -> str:
    """Deterministic Stripe-shaped ids (`cus_T000001` …) for stable test output."""
    return f"{prefix}_T{next(_ids):06d}"


@lru_cache(maxsize=1)
def _fixtures() -> dict[str, Any]:
    resources: dict[str, Any] = json.loads(FIXTURES_PATH.read_text(encoding="utf-8"))["resources"]
    return resources


def fixture(kind: str) -> dict[str, Any]:
    """A deep copy of Stripe's example object of `kind` (`customer`, `subscription`, `invoice` …)."""
    return copy.deepcopy(_fixtures()[kind])


# ------------------------------------------------------------------------------------------- objects


def price(price_id: str, unit_amount: int = 4_900) -> dict[str, Any]:
    obj = fixture("price")
    obj.update(id=price_id, unit_amount=unit_amount, unit_amount_decimal=str(unit_amount), lookup_key=None)
    obj["recurring"] = {
        "interval": "month",
        "interval_count": 1,
        "meter": None,
        "usage_type": "licensed",
        "trial_period_days": None,
    }
    return obj


def customer(
    customer_id: str | None = None,
    *,
    tenant_id: str | None = None,
    email: str | None = "ada@example.com",
    name: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    obj = fixture("customer")
    obj.update(
        id=customer_id or next_id("cus"),
        email=email,
        name=name,
        created=created or int(time.time()),
        metadata={"tenant_id": tenant_id} if tenant_id else {},
        discount=None,
    )
    return obj


def deleted_customer(customer_id: str) -> dict[str, Any]:
    obj = fixture("deleted_customer")
    obj["id"] = customer_id
    return obj


def subscription(
    subscription_id: str,
    customer_id: str,
    price_id: str,
    *,
    created: int,
    period_start: int,
    period_end: int,
    status: str = "active",
    cancel_at_period_end: bool = False,
    cancel_at: int | None = None,
    canceled_at: int | None = None,
    ended_at: int | None = None,
    trial_end: int | None = None,
    metadata: dict[str, str] | None = None,
    item_id: str | None = None,
) -> dict[str, Any]:
    """A subscription of the current API version: the billing period lives on the item."""
    obj = fixture("subscription")
    item = obj["items"]["data"][0]
    item.update(
        id=item_id or f"si_{subscription_id[4:]}",
        subscription=subscription_id,
        price=price(price_id),
        created=created,
        current_period_start=period_start,
        current_period_end=period_end,
    )
    item["plan"] = {**item["plan"], "id": price_id, "interval_count": 1, "currency": "usd"}
    obj["items"]["url"] = f"/v1/subscription_items?subscription={subscription_id}"
    obj.update(
        id=subscription_id,
        customer=customer_id,
        status=status,
        created=created,
        start_date=created,
        billing_cycle_anchor=period_start,
        cancel_at_period_end=cancel_at_period_end,
        cancel_at=cancel_at,
        canceled_at=canceled_at,
        ended_at=ended_at,
        trial_start=created if trial_end else None,
        trial_end=trial_end,
        metadata=metadata or {},
        pause_collection=None,
        pending_update=None,
        latest_invoice=None,
    )
    return obj


def invoice(
    customer_id: str,
    subscription_id: str | None,
    *,
    created: int,
    paid: bool = True,
    billing_reason: str = "subscription_cycle",
    amount: int = 4_900,
    invoice_id: str | None = None,
) -> dict[str, Any]:
    """An invoice of the current API version: its subscription is `parent.subscription_details`."""
    obj = fixture("invoice")
    obj.update(
        id=invoice_id or next_id("in"),
        customer=customer_id,
        created=created,
        billing_reason=billing_reason,
        status="paid" if paid else "open",
        amount_due=amount,
        amount_paid=amount if paid else 0,
        amount_remaining=0 if paid else amount,
        attempted=True,
        attempt_count=1,
        subscription=None,
    )
    obj["status_transitions"]["paid_at"] = created if paid else None
    if subscription_id is None:
        obj["parent"] = None
    else:
        obj["parent"] = {
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {"metadata": {}, "subscription": subscription_id},
        }
    return obj


def upcoming_invoice(
    customer_id: str, lines: list[tuple[str, int, int]], *, created: int, currency: str = "usd"
) -> dict[str, Any]:
    """Stripe's preview of a customer's next invoice (`POST /v1/invoices/create_preview`): a draft whose id
    starts `upcoming_`, one line per (price id, amount in minor units, quantity)."""
    obj = invoice(customer_id, None, created=created, paid=False, billing_reason="upcoming", amount=0)
    data = []
    for price_id, amount, quantity in lines:
        line = invoice_line(price_id, quantity=quantity)
        line.update(amount=amount, currency=currency, subtotal=amount, invoice=None)
        line["pricing"]["unit_amount_decimal"] = None
        data.append(line)
    total = sum(amount for _price, amount, _quantity in lines)
    obj.update(
        id=f"upcoming_{next_id('in')}",
        object="invoice",
        status="draft",
        currency=currency,
        lines={"object": "list", "data": data, "has_more": False, "url": "/v1/invoices/upcoming/lines"},
        subtotal=total,
        subtotal_excluding_tax=total,
        total=total,
        total_excluding_tax=total,
        amount_due=total,
        amount_remaining=total,
        amount_paid=0,
        attempted=False,
        attempt_count=0,
    )
    return obj


def checkout_session(
    customer_id: str,
    subscription_id: str | None,
    *,
    tenant_id: str | None,
    created: int,
    mode: str = "subscription",
    invoice_id: str | None = None,
    payment_status: str = "paid",
) -> dict[str, Any]:
    obj = fixture("checkout.session")
    obj.update(
        id=next_id("cs_test"),
        mode=mode,
        customer=customer_id,
        subscription=subscription_id,
        client_reference_id=tenant_id,
        created=created,
        status="complete",
        payment_status=payment_status,
        invoice=invoice_id,
    )
    return obj


def invoice_line(price_id: str, *, quantity: int = 1, invoice_id: str | None = None) -> dict[str, Any]:
    """An invoice line of the current API version: its price is `pricing.price_details.price`."""
    line = copy.deepcopy(fixture("invoice")["lines"]["data"][0])
    line.update(id=next_id("il"), invoice=invoice_id, quantity=quantity, subscription=None)
    line["parent"] = {"type": "invoice_item_details", "invoice_item_details": {"invoice_item": next_id("ii")}}
    line["pricing"] = {
        "type": "price_details",
        "price_details": {"price": price_id, "product": next_id("prod")},
        "unit_amount_decimal": "1000",
    }
    return line


def topup_invoice(
    customer_id: str, price_id: str, *, created: int, quantity: int = 1, metadata: dict[str, str] | None = None
) -> dict[str, Any]:
    """A paid one-off invoice (no subscription) buying `quantity` of a top-up price."""
    obj = invoice(customer_id, None, created=created, billing_reason="manual")
    obj["lines"] = {
        "object": "list",
        "data": [invoice_line(price_id, quantity=quantity, invoice_id=obj["id"])],
        "has_more": False,
        "url": f"/v1/invoices/{obj['id']}/lines",
    }
    obj["metadata"] = metadata or {}
    return obj


def checkout_line_item(price_id: str, *, quantity: int = 1) -> dict[str, Any]:
    """A checkout session line item (`GET /v1/checkout/sessions/{id}/line_items`)."""
    return {
        "id": next_id("li"),
        "object": "item",
        "amount_total": 1000 * quantity,
        "currency": "usd",
        "description": "top-up",
        "price": price(price_id, unit_amount=1000),
        "quantity": quantity,
    }


def event(
    event_type: str,
    obj: dict[str, Any],
    *,
    created: int,
    event_id: str | None = None,
    previous_attributes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A webhook event (snapshot payload) around `obj`, in the API version the SDK pins."""
    evt = fixture("event")
    evt.update(
        id=event_id or next_id("evt"),
        type=event_type,
        created=created,
        api_version=stripe.api_version,
        pending_webhooks=1,
        request={"id": next_id("req"), "idempotency_key": None},
    )
    evt["data"] = {"object": copy.deepcopy(obj)}
    if previous_attributes is not None:
        evt["data"]["previous_attributes"] = previous_attributes
    return evt


# ------------------------------------------------------------------------------------------- signing


def sign(payload: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header Stripe sends for `payload`."""
    ts = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{ts}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={ts},v1={digest}"


def payload_of(evt: dict[str, Any] | str) -> str:
    # Stripe sends pretty-printed JSON; the signature covers these exact bytes.
    return evt if isinstance(evt, str) else json.dumps(evt, indent=2)


def webhook_request(
    evt: dict[str, Any] | str,
    *,
    secret: str = WEBHOOK_SECRET,
    timestamp: int | None = None,
    signature: str | None = None,
    omit_signature: bool = False,
    base64_body: bool = False,
    body_override: str | None = None,
) -> dict[str, Any]:
    """An API Gateway proxy event for POST /v1/webhooks/stripe. `body_override` sends another body
    under the signature of `evt` (tampering)."""
    payload = payload_of(evt)
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Stripe/1.0"}
    if not omit_signature:
        headers["Stripe-Signature"] = signature or sign(payload, secret, timestamp)
    body = payload if body_override is None else body_override
    return api_event("POST", WEBHOOK_PATH, raw_body=body, headers=headers, base64_body=base64_body)


# ------------------------------------------------------------------------------------------- HTTP fake


@dataclass
class RecordedRequest:
    method: str
    url: str
    headers: dict[str, str]
    params: dict[str, str]

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def idempotency_key(self) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == "idempotency-key":
                return value
        return None


@dataclass
class Fault:
    status: int | None  # None: connection error
    error: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


class FakeStripeApi:
    """Just enough of Stripe's v1 customers / subscriptions API, answering with fixture-shaped objects."""

    def __init__(self, clock: Any = time.time) -> None:
        self.clock = clock
        self.customers: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.line_items: dict[str, list[dict[str, Any]]] = {}  # checkout session / invoice id -> lines
        self.upcoming: dict[str, dict[str, Any]] = {}  # customer id -> its next invoice's preview

    def _now(self) -> int:
        return int(self.clock())

    def handle(self, method: str, path: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        parts = [p for p in path.split("/") if p][1:]  # drop "v1"
        if parts == ["customers"] and method == "post":
            obj = customer(
                next_id("cus"),
                tenant_id=params.get("metadata[tenant_id]"),
                email=params.get("email"),
                name=params.get("name"),
                created=self._now(),
            )
            self.customers[obj["id"]] = obj
            return 200, obj
        if len(parts) == 2 and parts[0] == "customers" and method == "get":
            found = self.customers.get(parts[1])
            return (200, found) if found else missing("customer", parts[1])
        if parts == ["subscriptions"] and method == "post":
            cus = params.get("customer", "")
            if cus not in self.customers:
                return missing("customer", cus)
            now = self._now()
            trial = int(params["trial_period_days"]) if params.get("trial_period_days") else 0
            end = now + (trial or 30) * 86_400
            sub_id = next_id("sub")
            obj = subscription(
                sub_id,
                cus,
                params.get("items[0][price]", ""),
                created=now,
                period_start=now,
                period_end=end,
                status="trialing" if trial else "active",
                trial_end=end if trial else None,
            )
            self.subscriptions[sub_id] = obj
            return 200, obj
        if len(parts) == 2 and parts[0] == "subscriptions":
            sub = self.subscriptions.get(parts[1])
            if sub is None:
                return missing("subscription", parts[1])
            if method == "get":
                return 200, sub
            if method == "delete":
                now = self._now()
                sub.update(status="canceled", canceled_at=now, ended_at=now, cancel_at_period_end=False)
                return 200, sub
            if method == "post":
                if "items[0][price]" in params:
                    sub["items"]["data"][0]["price"] = price(params["items[0][price]"])
                if params.get("cancel_at_period_end") == "true":
                    end = sub["items"]["data"][0]["current_period_end"]
                    sub.update(cancel_at_period_end=True, cancel_at=end, canceled_at=self._now())
                return 200, sub
        if parts == ["invoices", "create_preview"] and method == "post":
            cus = params.get("customer", "")
            if cus not in self.customers:
                return missing("customer", cus)
            if cus not in self.upcoming:
                return 404, {
                    "error": {
                        "type": "invalid_request_error",
                        "code": "invoice_upcoming_none",
                        "message": f"No upcoming invoices for customer: {cus}",
                    }
                }
            return 200, self.upcoming[cus]
        if method == "get" and (
            (len(parts) == 4 and parts[:2] == ["checkout", "sessions"] and parts[3] == "line_items")
            or (len(parts) == 3 and parts[0] == "invoices" and parts[2] == "lines")
        ):
            object_id = parts[2] if parts[0] == "checkout" else parts[1]
            if object_id not in self.line_items:
                return missing("checkout session" if parts[0] == "checkout" else "invoice", object_id)
            data = self.line_items[object_id]
            return 200, {"object": "list", "data": data, "has_more": False, "url": path}
        return 404, {"error": {"type": "invalid_request_error", "message": f"Unrecognized request URL ({path})"}}


def missing(kind: str, object_id: str) -> tuple[int, dict[str, Any]]:
    return 404, {
        "error": {
            "type": "invalid_request_error",
            "code": "resource_missing",
            "param": "id",
            "message": f"No such {kind}: '{object_id}'",
            "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
        }
    }


class FakeStripeHTTPClient(stripe.HTTPClient):
    """The transport under the real SDK. Faults queued with `fail_next` / `disconnect_next` answer the
    next requests in order; then `FakeStripeApi` answers."""

    name = "fake"

    def __init__(self, api: FakeStripeApi | None = None) -> None:
        super().__init__()
        self.api = api or FakeStripeApi()
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.backoffs: list[float] = []
        self._replays: dict[str, tuple[str, int, dict[str, str]]] = {}
        self._request_ids = itertools.count(1)

    # -- fault injection
    def fail_next(
        self,
        status: int,
        error_type: str,
        *,
        code: str | None = None,
        message: str = "failed",
        decline_code: str | None = None,
        times: int = 1,
        should_retry: bool | None = None,
    ) -> None:
        error: dict[str, Any] = {"type": error_type, "message": message}
        if code:
            error["code"] = code
        if decline_code:
            error["decline_code"] = decline_code
        headers = {} if should_retry is None else {"Stripe-Should-Retry": "true" if should_retry else "false"}
        self.faults.extend(Fault(status, error, headers) for _ in range(times))

    def disconnect_next(self, times: int = 1) -> None:
        self.faults.extend(Fault(None) for _ in range(times))

    @property
    def mutations(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method in ("post", "delete")]

    # -- stripe.HTTPClient
    def request(
        self,
        method: str,
        url: str,
        headers: Any,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[str, int, CaseInsensitiveDict[str]]:
        # Real transports hand the SDK case-insensitive headers (it reads `request-id`).
        body, status, headers = self._answer(method, url, headers, post_data)
        return body, status, CaseInsensitiveDict(headers)

    def _answer(self, method: str, url: str, headers: Any, post_data: Any) -> tuple[str, int, dict[str, str]]:
        method = method.lower()
        query = urlsplit(url).query
        form = post_data.decode() if isinstance(post_data, bytes) else (post_data or "")
        params = dict(parse_qsl(form or query, keep_blank_values=True))
        recorded = RecordedRequest(method, url, dict(headers or {}), params)
        self.requests.append(recorded)
        request_id = f"req_fake{next(self._request_ids):06d}"
        if self.faults:
            fault = self.faults.pop(0)
            if fault.status is None:
                raise stripe.APIConnectionError("Connection reset by peer (fake)", should_retry=True)
            body = json.dumps({"error": {**fault.error, "request_log_url": f"https://dashboard/{request_id}"}})
            return body, fault.status, {"Request-Id": request_id, **fault.headers}
        key = recorded.idempotency_key
        if method == "post" and key and key in self._replays:
            body, status, replay_headers = self._replays[key]
            return body, status, {**replay_headers, "Idempotent-Replayed": "true"}
        status, obj = self.api.handle(method, recorded.path, params)
        response = (json.dumps(obj), status, {"Request-Id": request_id})
        if method == "post" and key and status < 500:
            self._replays[key] = response
        return response

    def request_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        return None

    def _sleep_time_seconds(self, num_retries: int) -> float:
        # Record the SDK's own backoff (it grows with each retry) without sleeping it.
        self.backoffs.append(super()._sleep_time_seconds(num_retries))
        return 0.0


def stripe_client(http: FakeStripeHTTPClient, max_network_retries: int = 2) -> stripe.StripeClient:
    return stripe.StripeClient(API_KEY, http_client=http, max_network_retries=max_network_retries)


# ------------------------------------------------------------------------------------------- scenarios

DAY = 86_400
MONTH = 30 * DAY


class SubscriptionStory:
    """One customer's subscription moving through its life the way Stripe moves it. Each step changes
    the object Stripe holds (`api.subscriptions`, what a re-fetch returns) and returns the events Stripe
    sends for it, each `created` at the story's clock, which every step advances by `step` seconds."""

    def __init__(self, api: FakeStripeApi, tenant_id: str, *, start: int, step: int = 60, metadata: bool = True):
        self.api = api
        self.tenant_id = tenant_id
        self.now = start
        self.step = step
        self.customer = customer(tenant_id=tenant_id if metadata else None, created=start)
        api.customers[self.customer["id"]] = self.customer
        self.sub: dict[str, Any] | None = None

    @property
    def customer_id(self) -> str:
        return str(self.customer["id"])

    @property
    def subscription_id(self) -> str:
        assert self.sub is not None
        return str(self.sub["id"])

    @property
    def item(self) -> dict[str, Any]:
        assert self.sub is not None
        item: dict[str, Any] = self.sub["items"]["data"][0]
        return item

    def _tick(self, seconds: int | None = None) -> int:
        self.now += self.step if seconds is None else seconds
        return self.now

    def _sub_event(self, event_type: str, previous: dict[str, Any] | None = None) -> dict[str, Any]:
        return event(event_type, self.sub or {}, created=self.now, previous_attributes=previous)

    def customer_created(self) -> dict[str, Any]:
        return event("customer.created", self.customer, created=self._tick(0))

    def subscribe(self, price_id: str, *, trial_days: int = 0) -> list[dict[str, Any]]:
        now = self._tick()
        end = now + (trial_days * DAY if trial_days else MONTH)
        self.sub = subscription(
            next_id("sub"),
            self.customer_id,
            price_id,
            created=now,
            period_start=now,
            period_end=end,
            status="trialing" if trial_days else "active",
            trial_end=end if trial_days else None,
        )
        self.api.subscriptions[self.subscription_id] = self.sub
        created = self._sub_event("customer.subscription.created")
        paid = event(
            "invoice.paid",
            invoice(self.customer_id, self.subscription_id, created=now, billing_reason="subscription_create"),
            created=now,
        )
        return [created, paid]

    def change_price(self, price_id: str) -> dict[str, Any]:
        assert self.sub is not None
        self._tick()
        previous = {"items": copy.deepcopy(self.sub["items"])}
        self.item["price"] = price(price_id)
        self.item["plan"]["id"] = price_id
        return self._sub_event("customer.subscription.updated", previous)

    def renew(self) -> list[dict[str, Any]]:
        """The period ends and the next one starts (a trial converts); the renewal invoice is paid."""
        assert self.sub is not None
        start = self.item["current_period_end"]
        self.now = max(self.now + self.step, start)
        previous = {"status": self.sub["status"], "items": copy.deepcopy(self.sub["items"])}
        self.item.update(current_period_start=start, current_period_end=start + MONTH)
        self.sub["status"] = "active"
        updated = self._sub_event("customer.subscription.updated", previous)
        paid = event(
            "invoice.paid", invoice(self.customer_id, self.subscription_id, created=self.now), created=self.now
        )
        return [updated, paid]

    def fail_payment(self, *, final: bool = False) -> list[dict[str, Any]]:
        assert self.sub is not None
        self._tick()
        previous = {"status": self.sub["status"]}
        self.sub["status"] = "unpaid" if final else "past_due"
        failed = event(
            "invoice.payment_failed",
            invoice(self.customer_id, self.subscription_id, created=self.now, paid=False),
            created=self.now,
        )
        return [failed, self._sub_event("customer.subscription.updated", previous)]

    def pay(self) -> list[dict[str, Any]]:
        assert self.sub is not None
        self._tick()
        previous = {"status": self.sub["status"]}
        self.sub["status"] = "active"
        paid = event(
            "invoice.paid", invoice(self.customer_id, self.subscription_id, created=self.now), created=self.now
        )
        return [paid, self._sub_event("customer.subscription.updated", previous)]

    def cancel_at_period_end(self) -> dict[str, Any]:
        assert self.sub is not None
        self._tick()
        self.sub.update(cancel_at_period_end=True, cancel_at=self.item["current_period_end"], canceled_at=self.now)
        return self._sub_event("customer.subscription.updated", {"cancel_at_period_end": False, "cancel_at": None})

    def pause(self) -> dict[str, Any]:
        assert self.sub is not None
        self._tick()
        self.sub["status"] = "paused"
        return self._sub_event("customer.subscription.paused", {"status": "active"})

    def resume(self) -> dict[str, Any]:
        assert self.sub is not None
        self._tick()
        self.sub["status"] = "active"
        return self._sub_event("customer.subscription.resumed", {"status": "paused"})

    def trial_will_end(self) -> dict[str, Any]:
        self._tick()
        return self._sub_event("customer.subscription.trial_will_end")

    def end(self) -> dict[str, Any]:
        """The subscription is deleted (immediately, or its period ended with cancel_at_period_end)."""
        assert self.sub is not None
        self._tick()
        self.sub.update(status="canceled", ended_at=self.now, canceled_at=self.sub.get("canceled_at") or self.now)
        return self._sub_event("customer.subscription.deleted")

    def checkout_completed(self) -> dict[str, Any]:
        return event(
            "checkout.session.completed",
            checkout_session(self.customer_id, self.subscription_id, tenant_id=self.tenant_id, created=self.now),
            created=self.now,
        )


def deliver(handler: Any, evt: dict[str, Any] | str, **request: Any) -> tuple[int, Any]:
    """POST one signed event through the real webhook handler; (status, JSON body)."""
    from tests.factories.apigw import json_body
    from tests.factories.lambda_context import LambdaContext

    response = handler.handler(webhook_request(evt, **request), LambdaContext(function_name="stripe_webhook"))
    return int(response["statusCode"]), json_body(response)
