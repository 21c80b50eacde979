"""`MockBillingProvider`: an in-memory Stripe for development and the local stack.

No network. Objects are Stripe-shaped dictionaries (the fields of the current API version that the
platform and its webhooks read, with Stripe's id prefixes), so the events it emits go through the same
parser as Stripe's. An optional event sink receives the events Stripe would send for each change
(`customer.created`, `customer.subscription.created/updated/deleted`, `invoice.paid`,
`invoice.payment_failed`); the local stack signs those and POSTs them to the webhook route.
All state sits behind one lock, so concurrent requests of the local stack's HTTP server are safe.
"""

from __future__ import annotations

import copy
import secrets
import string
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from billing_platform.errors import PaymentRequiredError, ProviderInvalidRequestError, ProviderNotFoundError
from billing_platform.ids import TenantIdLike, tenant_id_str
from billing_platform.providers.base import OffloadedProvider, ProviderCustomer, ProviderSubscription

# The API version stripe 16.1 pins; events carry it as Stripe's do.
API_VERSION = "2026-10-28.endive"
PERIOD = timedelta(days=30)
DAY = 86_400
DEFAULT_PRICE_AMOUNTS = {
    "price_free_monthly": 0,
    "price_pro_monthly": 4_900,
    "price_pro_yearly": 49_000,
    "price_enterprise_monthly": 49_900,
    "price_enterprise_yearly": 499_000,
}

EventSink = Callable[[dict[str, Any]], None]
_ALPHABET = string.ascii_letters + string.digits


def stripe_id(prefix: str, length: int = 24) -> str:
    """An id shaped like Stripe's: `cus_…`, `sub_…`, `evt_…`."""
    return f"{prefix}_{''.join(secrets.choice(_ALPHABET) for _ in range(length))}"


def _not_found(kind: str, object_id: str) -> ProviderNotFoundError:
    return ProviderNotFoundError(
        f"No such {kind}: '{object_id}'", provider_code="resource_missing", request_id=stripe_id("req", 14)
    )


class SyncMockBillingProvider:
    """The blocking in-memory provider (`SyncBillingProvider`), plus test-clock style helpers
    (`renew`, `fail_payment`, `pay`) that move a subscription the way Stripe's billing cycle would."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        event_sink: EventSink | None = None,
        price_amounts: dict[str, int] | None = None,
        decline_emails: frozenset[str] = frozenset(),
    ) -> None:
        self._clock = clock
        self.event_sink = event_sink
        self._prices = dict(DEFAULT_PRICE_AMOUNTS if price_amounts is None else price_amounts)
        self._decline_emails = decline_emails
        self._lock = threading.RLock()
        self.customers: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.invoice_items: list[dict[str, Any]] = []
        self.line_items: dict[str, list[dict[str, Any]]] = {}  # checkout session / invoice id -> lines
        self.events: list[dict[str, Any]] = []
        self._idempotent: dict[str, dict[str, Any]] = {}

    # --- helpers -------------------------------------------------------------------------------
    def _now(self) -> int:
        return int(self._clock())

    def _emit(self, event_type: str, obj: dict[str, Any], previous: dict[str, Any] | None = None) -> None:
        data: dict[str, Any] = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = previous
        event = {
            "id": stripe_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self._now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": stripe_id("req", 14), "idempotency_key": None},
            "type": event_type,
        }
        self.events.append(event)
        if self.event_sink is not None:
            self.event_sink(event)

    def _replay(self, key: str | None) -> dict[str, Any] | None:
        return copy.deepcopy(self._idempotent[key]) if key and key in self._idempotent else None

    def _remember(self, key: str | None, obj: dict[str, Any]) -> None:
        if key:
            self._idempotent[key] = copy.deepcopy(obj)

    def _price(self, price_id: str) -> dict[str, Any]:
        if price_id not in self._prices:
            raise _not_found("price", price_id)
        return {
            "id": price_id,
            "object": "price",
            "active": True,
            "currency": "usd",
            "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed", "meter": None},
            "type": "recurring",
            "unit_amount": self._prices[price_id],
            "livemode": False,
            "metadata": {},
        }

    def _subscription(self, subscription_id: str) -> dict[str, Any]:
        try:
            return self.subscriptions[subscription_id]
        except KeyError:
            raise _not_found("subscription", subscription_id) from None

    def _invoice(self, sub: dict[str, Any], *, paid: bool, reason: str) -> dict[str, Any]:
        item = sub["items"]["data"][0]
        amount = 0 if sub["status"] == "trialing" else int(item["price"]["unit_amount"] or 0)
        now = self._now()
        return {
            "id": stripe_id("in"),
            "object": "invoice",
            "customer": sub["customer"],
            "status": "paid" if paid else "open",
            "billing_reason": reason,
            "amount_due": amount,
            "amount_paid": amount if paid else 0,
            "amount_remaining": 0 if paid else amount,
            "attempt_count": 1,
            "attempted": True,
            "created": now,
            "currency": "usd",
            "livemode": False,
            "metadata": {},
            "period_start": item["current_period_start"],
            "period_end": item["current_period_end"],
            "parent": {
                "type": "subscription_details",
                "subscription_details": {"subscription": sub["id"], "metadata": {}},
                "quote_details": None,
            },
            "lines": {"object": "list", "data": [], "has_more": False},
            "status_transitions": {"paid_at": now if paid else None},
        }

    # --- SyncBillingProvider -------------------------------------------------------------------
    def create_customer(
        self, tenant_id: TenantIdLike, email: str, name: str | None = None, *, idempotency_key: str | None = None
    ) -> str:
        tenant_id = tenant_id_str(tenant_id)
        with self._lock:
            replay = self._replay(idempotency_key)
            if replay is not None:
                return str(replay["id"])
            customer: dict[str, Any] = {
                "id": stripe_id("cus", 14),
                "object": "customer",
                "created": self._now(),
                "email": email,
                "name": name,
                "metadata": {"tenant_id": tenant_id},
                "livemode": False,
                "delinquent": False,
                "balance": 0,
                "currency": None,
                "invoice_prefix": "".join(secrets.choice(string.ascii_uppercase) for _ in range(7)),
            }
            self.customers[customer["id"]] = customer
            self._remember(idempotency_key, customer)
            self._emit("customer.created", customer)
            return str(customer["id"])

    def get_customer(self, customer_id: str) -> ProviderCustomer:
        with self._lock:
            if customer_id not in self.customers:
                raise _not_found("customer", customer_id)
            return ProviderCustomer.from_stripe(self.customers[customer_id])

    def create_subscription(
        self, customer_id: str, price_id: str, trial_days: int | None = None, *, idempotency_key: str | None = None
    ) -> ProviderSubscription:
        with self._lock:
            replay = self._replay(idempotency_key)
            if replay is not None:
                return ProviderSubscription.from_stripe(replay)
            customer = self.customers.get(customer_id)
            if customer is None:
                raise _not_found("customer", customer_id)
            if customer.get("email") in self._decline_emails and not trial_days:
                raise PaymentRequiredError(
                    "Your card was declined.", provider_code="card_declined", request_id=stripe_id("req", 14)
                )
            now = self._now()
            period_end = now + (trial_days * DAY if trial_days else int(PERIOD.total_seconds()))
            sub_id = stripe_id("sub")
            sub: dict[str, Any] = {
                "id": sub_id,
                "object": "subscription",
                "created": now,
                "start_date": now,
                "customer": customer_id,
                "status": "trialing" if trial_days else "active",
                "cancel_at_period_end": False,
                "cancel_at": None,
                "canceled_at": None,
                "ended_at": None,
                "trial_start": now if trial_days else None,
                "trial_end": period_end if trial_days else None,
                "billing_cycle_anchor": period_end if trial_days else now,
                "collection_method": "charge_automatically",
                "currency": "usd",
                "latest_invoice": None,
                "livemode": False,
                "metadata": {},
                "pause_collection": None,
                "items": {
                    "object": "list",
                    "data": [
                        {
                            "id": stripe_id("si", 14),
                            "object": "subscription_item",
                            "created": now,
                            "price": self._price(price_id),
                            "quantity": 1,
                            "subscription": sub_id,
                            "metadata": {},
                            "current_period_start": now,
                            "current_period_end": period_end,
                        }
                    ],
                    "has_more": False,
                    "url": f"/v1/subscription_items?subscription={sub_id}",
                },
            }
            invoice = self._invoice(sub, paid=True, reason="subscription_create")
            sub["latest_invoice"] = invoice["id"]
            self.subscriptions[sub_id] = sub
            self._remember(idempotency_key, sub)
            self._emit("customer.subscription.created", sub)
            self._emit("invoice.paid", invoice)
            return ProviderSubscription.from_stripe(sub)

    def update_subscription(
        self, subscription_id: str, new_price_id: str, *, idempotency_key: str | None = None
    ) -> ProviderSubscription:
        with self._lock:
            replay = self._replay(idempotency_key)
            if replay is not None:
                return ProviderSubscription.from_stripe(replay)
            sub = self._subscription(subscription_id)
            if sub["status"] in ("canceled", "incomplete_expired"):
                raise ProviderInvalidRequestError(
                    "A canceled subscription can only update its cancellation_details and metadata.",
                    provider_code="resource_invalid_state",
                )
            item = sub["items"]["data"][0]
            new_price = self._price(new_price_id)
            old_price = item["price"]
            now = self._now()
            # Proration as Stripe's create_prorations does: credit the unused part of the old price,
            # charge the rest of the period at the new one, on the next invoice.
            span = max(1, item["current_period_end"] - item["current_period_start"])
            unused = max(0, item["current_period_end"] - now) / span
            for price, sign in ((old_price, -1), (new_price, 1)):
                self.invoice_items.append(
                    {
                        "id": stripe_id("ii"),
                        "object": "invoiceitem",
                        "customer": sub["customer"],
                        "subscription": subscription_id,
                        "proration": True,
                        "amount": sign * round((price["unit_amount"] or 0) * unused),
                        "currency": "usd",
                        "date": now,
                        "price": price["id"],
                    }
                )
            previous = {"items": copy.deepcopy(sub["items"])}
            item["price"] = new_price
            self._remember(idempotency_key, sub)
            self._emit("customer.subscription.updated", sub, previous)
            return ProviderSubscription.from_stripe(sub)

    def cancel_subscription(
        self, subscription_id: str, immediate: bool = False, *, idempotency_key: str | None = None
    ) -> ProviderSubscription:
        with self._lock:
            replay = self._replay(idempotency_key)
            if replay is not None:
                return ProviderSubscription.from_stripe(replay)
            sub = self._subscription(subscription_id)
            if sub["status"] == "canceled":
                raise ProviderInvalidRequestError(
                    f"No such subscription: '{subscription_id}'", provider_code="resource_missing"
                )
            now = self._now()
            if immediate:
                sub.update(status="canceled", canceled_at=now, ended_at=now, cancel_at_period_end=False)
                self._emit("customer.subscription.deleted", sub)
            else:
                previous = {"cancel_at_period_end": False, "cancel_at": None}
                period_end = sub["items"]["data"][0]["current_period_end"]
                sub.update(cancel_at_period_end=True, cancel_at=period_end, canceled_at=now)
                self._emit("customer.subscription.updated", sub, previous)
            self._remember(idempotency_key, sub)
            return ProviderSubscription.from_stripe(sub)

    def get_subscription(self, subscription_id: str) -> ProviderSubscription:
        with self._lock:
            return ProviderSubscription.from_stripe(self._subscription(subscription_id))

    def list_line_items(
        self, object_type: Literal["checkout_session", "invoice"], object_id: str
    ) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self.line_items.get(object_id, []))

    def buy_topup(self, customer_id: str, price_id: str, *, quantity: int = 1, tenant_id: str | None = None) -> str:
        """A paid one-off checkout (payment mode) of a top-up price; emits checkout.session.completed.
        Returns the session id."""
        with self._lock:
            customer = self.customers.get(customer_id)
            if customer is None:
                raise _not_found("customer", customer_id)
            session_id = stripe_id("cs_test", 58)
            line = {"id": stripe_id("li", 24), "object": "item", "price": {"id": price_id}, "quantity": quantity}
            self.line_items[session_id] = [line]
            session: dict[str, Any] = {
                "id": session_id,
                "object": "checkout.session",
                "mode": "payment",
                "status": "complete",
                "payment_status": "paid",
                "customer": customer_id,
                "client_reference_id": tenant_id or customer["metadata"].get("tenant_id"),
                "invoice": None,
                "subscription": None,
                "created": self._now(),
                "metadata": {},
                "livemode": False,
            }
            self._emit("checkout.session.completed", session)
            return session_id

    # --- billing-cycle simulation (what Stripe's test clocks do) --------------------------------
    def renew(self, subscription_id: str) -> ProviderSubscription:
        """End the current period: a subscription set to cancel is deleted; otherwise the next period
        starts, a trial converts to active, and the renewal invoice is paid."""
        with self._lock:
            sub = self._subscription(subscription_id)
            item = sub["items"]["data"][0]
            if sub["cancel_at_period_end"]:
                sub.update(status="canceled", ended_at=item["current_period_end"])
                self._emit("customer.subscription.deleted", sub)
                return ProviderSubscription.from_stripe(sub)
            previous = {"status": sub["status"], "items": copy.deepcopy(sub["items"])}
            start = item["current_period_end"]
            item.update(current_period_start=start, current_period_end=start + int(PERIOD.total_seconds()))
            sub["status"] = "active"
            invoice = self._invoice(sub, paid=True, reason="subscription_cycle")
            sub["latest_invoice"] = invoice["id"]
            self._emit("customer.subscription.updated", sub, previous)
            self._emit("invoice.paid", invoice)
            return ProviderSubscription.from_stripe(sub)

    def fail_payment(self, subscription_id: str, *, final: bool = False) -> ProviderSubscription:
        """A renewal payment fails: `past_due` (Stripe's retries continue), or `unpaid` when `final`."""
        with self._lock:
            sub = self._subscription(subscription_id)
            previous = {"status": sub["status"]}
            sub["status"] = "unpaid" if final else "past_due"
            invoice = self._invoice(sub, paid=False, reason="subscription_cycle")
            sub["latest_invoice"] = invoice["id"]
            self._emit("invoice.payment_failed", invoice)
            self._emit("customer.subscription.updated", sub, previous)
            return ProviderSubscription.from_stripe(sub)

    def pay(self, subscription_id: str) -> ProviderSubscription:
        """The customer pays the open invoice: the subscription is active again."""
        with self._lock:
            sub = self._subscription(subscription_id)
            previous = {"status": sub["status"]}
            sub["status"] = "active"
            invoice = self._invoice(sub, paid=True, reason="subscription_cycle")
            self._emit("invoice.paid", invoice)
            self._emit("customer.subscription.updated", sub, previous)
            return ProviderSubscription.from_stripe(sub)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._now(), tz=UTC)


class MockBillingProvider(OffloadedProvider):
    """The in-memory provider behind the `BillingProvider` interface; ``.sync`` is `SyncMockBillingProvider`."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        event_sink: EventSink | None = None,
        price_amounts: dict[str, int] | None = None,
        decline_emails: frozenset[str] = frozenset(),
    ) -> None:
        self.mock = SyncMockBillingProvider(
            clock=clock, event_sink=event_sink, price_amounts=price_amounts, decline_emails=decline_emails
        )
        super().__init__(self.mock)

    @property
    def sync(self) -> SyncMockBillingProvider:
        return self.mock
