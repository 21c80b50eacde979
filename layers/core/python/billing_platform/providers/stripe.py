"""`StripeBillingProvider`: the real `stripe` SDK (v1 namespaces of `stripe.StripeClient`).

What the SDK already does, and is not rebuilt here:

* network retries with exponential backoff and jitter on connection errors, 409 and 5xx
  (``max_network_retries``), honouring Stripe's ``Stripe-Should-Retry`` header;
* an ``Idempotency-Key`` on every POST, reused by its own retries.

What it does not do, and is added here: it does not retry 429 rate limits, so `_call` retries those
with backoff; and because a retry at this level is a new SDK request, every mutation gets an explicit
idempotency key (the caller's, or one made per logical call) that all attempts share, so Stripe applies
the mutation once however often it is sent. Every `stripe.StripeError` leaves this module as a typed
`BillingProviderError` that keeps Stripe's error code and request id.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any, Literal, TypeVar

import stripe

from billing_platform.errors import (
    BillingProviderError,
    PaymentRequiredError,
    ProviderAuthenticationError,
    ProviderConflictError,
    ProviderInvalidRequestError,
    ProviderNotFoundError,
    ProviderRateLimitError,
    ProviderUnavailableError,
)
from billing_platform.ids import TenantIdLike, tenant_id_str
from billing_platform.offload import run_blocking
from billing_platform.providers.base import OffloadedProvider, ProviderCustomer, ProviderSubscription
from billing_platform.providers.stripe_signature import (
    WEBHOOK_TOLERANCE_SECONDS as WEBHOOK_TOLERANCE_SECONDS,
)
from billing_platform.providers.stripe_signature import resolve_secret as resolve_secret
from billing_platform.providers.stripe_signature import verify_webhook as verify_webhook
from billing_platform.providers.stripe_signature import webhook_secret as webhook_secret
from billing_platform.settings import Settings, get_settings

# The webhook signature check and the secrets need no SDK: they live in providers.stripe_signature and
# are re-exported above for the callers that know them from here.

T = TypeVar("T")

# The SDK's own retries (connection errors, 409, 5xx); 429 gets `RATE_LIMIT_ATTEMPTS` tries on top.
MAX_NETWORK_RETRIES = 2
RATE_LIMIT_ATTEMPTS = 3


def map_stripe_error(exc: stripe.StripeError) -> BillingProviderError:
    """Translate one Stripe error into the platform's hierarchy, keeping Stripe's code and request id."""
    # The SDK leaves `code` unset on some classes (RateLimitError): the error body still carries it.
    code = exc.code or (getattr(exc.error, "code", None) if exc.error is not None else None)
    kwargs: dict[str, Any] = {
        "provider_code": code,
        "request_id": exc.request_id,
        "details": {"provider_status": exc.http_status} if exc.http_status else None,
    }
    message = exc.user_message or exc.__class__.__name__
    if isinstance(exc, stripe.CardError):
        decline = getattr(exc.error, "decline_code", None) if exc.error is not None else None
        if decline:
            kwargs["details"] = {**(kwargs["details"] or {}), "decline_code": decline}
        return PaymentRequiredError(message, **kwargs)
    if isinstance(exc, stripe.IdempotencyError):
        return ProviderConflictError(message, **kwargs)
    if isinstance(exc, stripe.InvalidRequestError):
        if code == "resource_missing" or exc.http_status == 404:
            return ProviderNotFoundError(message, **kwargs)
        if exc.http_status == 409:
            return ProviderConflictError(message, **kwargs)
        return ProviderInvalidRequestError(message, **kwargs)
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return ProviderAuthenticationError(message, **kwargs)
    if isinstance(exc, stripe.RateLimitError):
        return ProviderRateLimitError(message, **kwargs)
    if isinstance(exc, stripe.APIConnectionError):
        return ProviderUnavailableError(message, **kwargs)
    if isinstance(exc, stripe.APIError):
        if exc.http_status is not None and exc.http_status < 500:
            return BillingProviderError(message, **kwargs)
        return ProviderUnavailableError(message, **kwargs)
    return BillingProviderError(message, **kwargs)


class SyncStripeBillingProvider:
    """Blocking Stripe calls (`SyncBillingProvider`). `api_key` / `webhook_secret` override the
    settings' (`STRIPE_SECRET_KEY` / its Secrets Manager ARN, `STRIPE_WEBHOOK_SECRET` / its ARN); the
    API base and everything else still come from the settings."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        api_key: str | None = None,
        webhook_secret: str | None = None,
        client: stripe.StripeClient | None = None,
        http_client: stripe.HTTPClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings or get_settings()
        self._api_key = api_key
        self._webhook_secret = webhook_secret
        self._client = client
        self._http_client = http_client
        self._sleep = sleep

    @property
    def client(self) -> stripe.StripeClient:
        if self._client is None:
            self._client = build_stripe_client(self._settings, self._http_client, api_key=self._api_key)
        return self._client

    def verify_webhook(self, payload: bytes | str, signature_header: str | None) -> None:
        """Check a webhook's ``Stripe-Signature`` on its raw body with this provider's signing secret
        (tolerance 300 s); raise `WebhookSignatureError` if it does not match."""
        verify_webhook(payload, signature_header, self._webhook_secret or webhook_secret(self._settings))

    def _call(self, fn: Callable[[], T]) -> T:
        return call_stripe(fn, self._sleep)

    @staticmethod
    def _options(idempotency_key: str | None, operation: str) -> dict[str, Any]:
        # Namespaced by operation: a caller's key reused for another kind of call must not make Stripe
        # answer 400 idempotency_error (same key, different parameters).
        key = f"{operation}:{idempotency_key}" if idempotency_key else f"{operation}:{uuid.uuid4()}"
        return {"idempotency_key": key}

    def create_customer(
        self, tenant_id: TenantIdLike, email: str, name: str | None = None, *, idempotency_key: str | None = None
    ) -> str:
        params: dict[str, Any] = {"email": email, "metadata": {"tenant_id": tenant_id_str(tenant_id)}}
        if name:
            params["name"] = name
        options = self._options(idempotency_key, "create-customer")
        customer = self._call(lambda: self.client.v1.customers.create(params=params, options=options))  # type: ignore[arg-type]
        return str(customer.id)

    def get_customer(self, customer_id: str) -> ProviderCustomer:
        customer = self._call(lambda: self.client.v1.customers.retrieve(customer_id))
        return ProviderCustomer.from_stripe(customer.to_dict())

    def create_subscription(
        self, customer_id: str, price_id: str, trial_days: int | None = None, *, idempotency_key: str | None = None
    ) -> ProviderSubscription:
        params: dict[str, Any] = {"customer": customer_id, "items": [{"price": price_id}]}
        if trial_days:
            params["trial_period_days"] = trial_days
        options = self._options(idempotency_key, "create-subscription")
        sub = self._call(lambda: self.client.v1.subscriptions.create(params=params, options=options))  # type: ignore[arg-type]
        return ProviderSubscription.from_stripe(sub.to_dict())

    def update_subscription(
        self, subscription_id: str, new_price_id: str, *, idempotency_key: str | None = None
    ) -> ProviderSubscription:
        current = self._call(lambda: self.client.v1.subscriptions.retrieve(subscription_id))
        items = current.to_dict().get("items", {}).get("data", [])
        if not items:
            raise ProviderInvalidRequestError(f"subscription {subscription_id} has no items to change")
        params: dict[str, Any] = {
            "items": [{"id": items[0]["id"], "price": new_price_id}],
            "proration_behavior": "create_prorations",
        }
        options = self._options(idempotency_key, "update-subscription")
        sub = self._call(
            lambda: self.client.v1.subscriptions.update(subscription_id, params=params, options=options)  # type: ignore[arg-type]
        )
        return ProviderSubscription.from_stripe(sub.to_dict())

    def cancel_subscription(
        self, subscription_id: str, immediate: bool = False, *, idempotency_key: str | None = None
    ) -> ProviderSubscription:
        options = self._options(idempotency_key, "cancel-subscription")
        if immediate:
            sub = self._call(lambda: self.client.v1.subscriptions.cancel(subscription_id, options=options))  # type: ignore[arg-type]
        else:
            sub = self._call(
                lambda: self.client.v1.subscriptions.update(
                    subscription_id,
                    params={"cancel_at_period_end": True},
                    options=options,  # type: ignore[arg-type]
                )
            )
        return ProviderSubscription.from_stripe(sub.to_dict())

    def get_subscription(self, subscription_id: str) -> ProviderSubscription:
        sub = self._call(lambda: self.client.v1.subscriptions.retrieve(subscription_id))
        return ProviderSubscription.from_stripe(sub.to_dict())

    def upcoming_invoice(self, customer_id: str) -> dict[str, Any]:
        """Stripe's preview of the customer's next invoice (`POST /v1/invoices/create_preview`), as Stripe
        shapes it. Not part of `SyncBillingProvider`: only the operator's comparison asks for it."""
        invoice = self._call(lambda: self.client.v1.invoices.create_preview(params={"customer": customer_id}))
        result: dict[str, Any] = invoice.to_dict()
        return result

    def list_line_items(
        self, object_type: Literal["checkout_session", "invoice"], object_id: str
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            page = self._call(partial(self._line_item_page, object_type, object_id, after))
            data = [item.to_dict() for item in page.data]
            items.extend(data)
            if not page.has_more or not data:
                return items
            after = data[-1]["id"]

    def _line_item_page(self, object_type: str, object_id: str, after: str | None) -> Any:
        params: dict[str, Any] = {"limit": 100}
        if after:
            params["starting_after"] = after
        if object_type == "checkout_session":
            return self.client.v1.checkout.sessions.line_items.list(object_id, params=params)  # type: ignore[arg-type]
        return self.client.v1.invoices.line_items.list(object_id, params=params)  # type: ignore[arg-type]


def build_stripe_client(
    settings: Settings, http_client: stripe.HTTPClient | None = None, *, api_key: str | None = None
) -> stripe.StripeClient:
    """A StripeClient with `api_key` or the platform's key (Secrets Manager ARN deployed, env locally),
    optional local API base and the SDK's own network retries."""
    key = api_key or resolve_secret(settings.stripe_secret_key, settings.stripe_api_key_secret_arn, "Stripe API key")
    base = {"api": settings.stripe_api_base} if settings.stripe_api_base else None
    return stripe.StripeClient(
        key,
        base_addresses=base,  # type: ignore[arg-type]
        max_network_retries=MAX_NETWORK_RETRIES,
        http_client=http_client,
    )


def call_stripe(fn: Callable[[], T], sleep: Callable[[float], None], attempts: int = RATE_LIMIT_ATTEMPTS) -> T:
    """Run one SDK call; 429s are retried `attempts` times in all with exponential backoff and jitter
    (0.5-1 s, 1-2 s, ...), every Stripe failure surfaces as a typed BillingProviderError."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except stripe.RateLimitError as exc:
            if attempt == attempts:
                raise map_stripe_error(exc) from exc
            sleep(0.5 * 2 ** (attempt - 1) * (1 + random.random()))
        except stripe.StripeError as exc:
            raise map_stripe_error(exc) from exc
    raise AssertionError("unreachable")  # pragma: no cover


class StripeBillingProvider(OffloadedProvider):
    """Stripe behind the `BillingProvider` interface; ``.sync`` is the blocking `SyncStripeBillingProvider`.
    ``StripeBillingProvider(api_key=..., webhook_secret=...)`` as the design document shows, or no
    arguments for the settings' keys (Secrets Manager deployed, environment locally)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        api_key: str | None = None,
        webhook_secret: str | None = None,
        client: stripe.StripeClient | None = None,
        http_client: stripe.HTTPClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._stripe = SyncStripeBillingProvider(
            settings,
            api_key=api_key,
            webhook_secret=webhook_secret,
            client=client,
            http_client=http_client,
            sleep=sleep,
        )
        super().__init__(self._stripe)

    @property
    def sync(self) -> SyncStripeBillingProvider:
        return self._stripe

    async def upcoming_invoice(self, customer_id: str) -> dict[str, Any]:
        """See `SyncStripeBillingProvider.upcoming_invoice`."""
        return await run_blocking(self._stripe.upcoming_invoice, customer_id)

    async def verify_webhook(self, payload: bytes | str, signature_header: str | None) -> None:
        """See `SyncStripeBillingProvider.verify_webhook` (the secret may come from Secrets Manager: off the loop)."""
        await run_blocking(self._stripe.verify_webhook, payload, signature_header)
