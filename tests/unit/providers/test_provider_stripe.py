"""`StripeBillingProvider` over the real stripe SDK, with a fake HTTP transport under it: what goes
on the wire (idempotency keys, parameters) and how each Stripe failure comes back (typed errors with
Stripe's code and request id, retries with backoff)."""

from __future__ import annotations

import asyncio
import json
from uuid import UUID

import pytest

from billing_platform.errors import (
    BillingProviderError,
    PaymentRequiredError,
    ProviderAuthenticationError,
    ProviderConflictError,
    ProviderInvalidRequestError,
    ProviderNotFoundError,
    ProviderRateLimitError,
    ProviderUnavailableError,
    WebhookSignatureError,
)
from billing_platform.providers.base import BillingProvider, ProviderSubscription
from billing_platform.providers.stripe import RATE_LIMIT_ATTEMPTS, StripeBillingProvider, SyncStripeBillingProvider
from billing_platform.settings import Settings
from tests.factories import stripe as sf


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def http() -> sf.FakeStripeHTTPClient:
    return sf.FakeStripeHTTPClient()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def provider(http: sf.FakeStripeHTTPClient, sleeps: Sleeps) -> SyncStripeBillingProvider:
    return SyncStripeBillingProvider(Settings(stripe_secret_key=sf.API_KEY), http_client=http, sleep=sleeps)


@pytest.fixture
def customer_id(provider: SyncStripeBillingProvider, http: sf.FakeStripeHTTPClient) -> str:
    customer_id = provider.create_customer("t_acme", "billing@acme.test", "Acme")
    http.requests.clear()
    return customer_id


# ------------------------------------------------------------------------------------------ success


def test_create_customer_stores_the_tenant_in_metadata(
    provider: SyncStripeBillingProvider, http: sf.FakeStripeHTTPClient
) -> None:
    customer_id = provider.create_customer("t_acme", "billing@acme.test", "Acme")

    assert customer_id.startswith("cus_")
    (request,) = http.requests
    assert (request.method, request.path) == ("post", "/v1/customers")
    assert request.params == {"email": "billing@acme.test", "metadata[tenant_id]": "t_acme", "name": "Acme"}
    assert request.headers["Authorization"] == f"Bearer {sf.API_KEY}"


def test_subscription_lifecycle_calls(
    provider: SyncStripeBillingProvider, http: sf.FakeStripeHTTPClient, customer_id: str
) -> None:
    sub = provider.create_subscription(customer_id, "price_pro_monthly", trial_days=14)
    assert isinstance(sub, ProviderSubscription)
    assert (sub.status, sub.price_id, sub.customer_id) == ("trialing", "price_pro_monthly", customer_id)
    assert sub.current_period_end is not None
    assert sub.trial_end == sub.current_period_end
    assert http.requests[-1].params == {
        "customer": customer_id,
        "items[0][price]": "price_pro_monthly",
        "trial_period_days": "14",
    }

    changed = provider.update_subscription(sub.id, "price_enterprise_monthly")
    assert changed.price_id == "price_enterprise_monthly"
    update = http.requests[-1]
    assert update.params["proration_behavior"] == "create_prorations"
    assert update.params["items[0][price]"] == "price_enterprise_monthly"
    assert update.params["items[0][id]"].startswith("si_")  # the existing item is changed, not a 2nd added

    at_end = provider.cancel_subscription(sub.id)
    assert at_end.cancel_at_period_end is True
    assert at_end.status == "trialing"
    assert http.requests[-1].params == {"cancel_at_period_end": "true"}

    now = provider.cancel_subscription(sub.id, immediate=True)
    assert now.status == "canceled"
    assert (http.requests[-1].method, http.requests[-1].path) == ("delete", f"/v1/subscriptions/{sub.id}")
    assert provider.get_subscription(sub.id).status == "canceled"


def test_every_mutating_call_carries_an_idempotency_key(
    provider: SyncStripeBillingProvider, http: sf.FakeStripeHTTPClient, customer_id: str
) -> None:
    sub = provider.create_subscription(customer_id, "price_pro_monthly")
    provider.update_subscription(sub.id, "price_enterprise_monthly")
    provider.cancel_subscription(sub.id)
    provider.cancel_subscription(sub.id, immediate=True)
    provider.create_customer("t_other", "o@example.com")

    keys = [r.idempotency_key for r in http.mutations]
    assert len(http.mutations) == 5
    assert all(keys)
    assert len(set(keys)) == 5  # one per logical call
    gets = [r for r in http.requests if r.method == "get"]
    assert gets  # update_subscription reads the item first
    assert all(r.idempotency_key is None for r in gets)


def test_a_callers_idempotency_key_is_namespaced_by_operation(
    provider: SyncStripeBillingProvider, http: sf.FakeStripeHTTPClient, customer_id: str
) -> None:
    first = provider.create_subscription(customer_id, "price_pro_monthly", idempotency_key="req-123")
    again = provider.create_subscription(customer_id, "price_pro_monthly", idempotency_key="req-123")

    assert again.id == first.id  # Stripe replayed the first answer
    assert {r.idempotency_key for r in http.mutations} == {"create-subscription:req-123"}
    assert len(http.api.subscriptions) == 1


def test_async_face_awaits_without_blocking_and_sync_face_needs_no_loop(http: sf.FakeStripeHTTPClient) -> None:
    provider = StripeBillingProvider(Settings(stripe_secret_key=sf.API_KEY), http_client=http)
    assert isinstance(provider, BillingProvider)

    async def seed() -> tuple[str, str]:
        customer_id = await provider.create_customer("t_async", "a@example.com")  # the id, as documented
        sub = await provider.create_subscription(customer_id, "price_pro_monthly")
        return customer_id, sub["id"]

    customer_id, sub_id = asyncio.run(seed())
    assert provider.sync.get_subscription(sub_id).customer_id == customer_id


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("status", "error_type", "code", "expected", "http_status"),
    [
        pytest.param(402, "card_error", "card_declined", PaymentRequiredError, 402, id="card-402"),
        pytest.param(400, "invalid_request_error", "parameter_missing", ProviderInvalidRequestError, 400, id="bad-400"),
        pytest.param(404, "invalid_request_error", "resource_missing", ProviderNotFoundError, 404, id="missing-404"),
        pytest.param(401, "invalid_request_error", None, ProviderAuthenticationError, 502, id="auth-401"),
        pytest.param(403, "invalid_request_error", None, ProviderAuthenticationError, 502, id="permission-403"),
        pytest.param(400, "idempotency_error", None, ProviderConflictError, 409, id="idempotency-400"),
    ],
)
def test_stripe_errors_become_typed_errors_keeping_code_and_request_id(
    provider: SyncStripeBillingProvider,
    http: sf.FakeStripeHTTPClient,
    customer_id: str,
    status: int,
    error_type: str,
    code: str | None,
    expected: type[BillingProviderError],
    http_status: int,
) -> None:
    http.fail_next(status, error_type, code=code, message="Stripe says no", decline_code="insufficient_funds")

    with pytest.raises(BillingProviderError) as caught:
        provider.create_subscription(customer_id, "price_pro_monthly")

    err = caught.value
    assert type(err) is expected
    assert err.http_status == http_status
    assert err.provider_code == code
    assert err.request_id is not None
    assert err.request_id.startswith("req_fake")
    assert err.to_dict()["request_id"] == err.request_id
    assert len(http.requests) == 1  # not retried
    if expected is PaymentRequiredError:
        assert err.details["decline_code"] == "insufficient_funds"
        assert err.message == "Stripe says no"


def test_unknown_customer_is_not_found(provider: SyncStripeBillingProvider) -> None:
    with pytest.raises(ProviderNotFoundError) as caught:
        provider.get_customer("cus_nope")
    assert caught.value.provider_code == "resource_missing"


def test_rate_limit_is_retried_with_backoff_under_the_same_idempotency_key(
    provider: SyncStripeBillingProvider, http: sf.FakeStripeHTTPClient, sleeps: Sleeps, customer_id: str
) -> None:
    http.fail_next(429, "rate_limit_error", code="rate_limit", times=RATE_LIMIT_ATTEMPTS - 1)

    sub = provider.create_subscription(customer_id, "price_pro_monthly")

    assert sub.id.startswith("sub_")
    assert len(http.mutations) == RATE_LIMIT_ATTEMPTS
    assert len({r.idempotency_key for r in http.mutations}) == 1
    assert len(sleeps) == RATE_LIMIT_ATTEMPTS - 1
    assert sleeps[1] > sleeps[0] >= 0.5  # exponential
    assert len(http.api.subscriptions) == 1


def test_rate_limit_that_persists_is_a_typed_503(
    provider: SyncStripeBillingProvider, http: sf.FakeStripeHTTPClient, customer_id: str
) -> None:
    http.fail_next(429, "rate_limit_error", code="rate_limit", times=RATE_LIMIT_ATTEMPTS)

    with pytest.raises(ProviderRateLimitError) as caught:
        provider.create_subscription(customer_id, "price_pro_monthly")

    assert (caught.value.http_status, caught.value.provider_code) == (503, "rate_limit")
    assert caught.value.request_id is not None
    assert http.api.subscriptions == {}


def test_connection_errors_are_retried_with_backoff_then_succeed(
    provider: SyncStripeBillingProvider, http: sf.FakeStripeHTTPClient, customer_id: str
) -> None:
    http.disconnect_next(times=2)

    sub = provider.create_subscription(customer_id, "price_pro_monthly")

    assert sub.status == "active"
    assert len(http.mutations) == 3
    assert len({r.idempotency_key for r in http.mutations}) == 1
    assert len(http.backoffs) == 2
    assert all(b >= 0.5 for b in http.backoffs)


def test_connection_errors_that_persist_are_a_typed_503(
    provider: SyncStripeBillingProvider, http: sf.FakeStripeHTTPClient
) -> None:
    http.disconnect_next(times=10)
    with pytest.raises(ProviderUnavailableError) as caught:
        provider.create_customer("t_x", "x@example.com")
    assert caught.value.http_status == 503


def test_server_error_is_retried_then_a_typed_503(
    provider: SyncStripeBillingProvider, http: sf.FakeStripeHTTPClient
) -> None:
    http.fail_next(500, "api_error", message="Something went wrong on Stripe's end.", times=10)
    with pytest.raises(ProviderUnavailableError) as caught:
        provider.create_customer("t_x", "x@example.com")
    assert caught.value.request_id is not None
    assert len(http.requests) == 3  # the SDK's own retries (max_network_retries=2)


def test_server_error_then_success_applies_once(
    provider: SyncStripeBillingProvider, http: sf.FakeStripeHTTPClient
) -> None:
    http.fail_next(500, "api_error")
    customer_id = provider.create_customer("t_once", "x@example.com")
    assert list(http.api.customers) == [customer_id]


def test_missing_api_key_is_a_configuration_error() -> None:
    provider = SyncStripeBillingProvider(Settings(), http_client=sf.FakeStripeHTTPClient())
    with pytest.raises(ProviderAuthenticationError) as caught:
        provider.get_customer("cus_x")
    assert caught.value.code == "provider_not_configured"


def test_api_key_and_webhook_secret_given_to_the_constructor_win_over_the_settings(
    http: sf.FakeStripeHTTPClient,
) -> None:
    settings = Settings(stripe_secret_key="sk_test_from_settings", stripe_webhook_secret="whsec_from_settings")
    provider = StripeBillingProvider(
        settings, api_key="sk_test_given", webhook_secret="whsec_given_0123", http_client=http
    )
    customer_id = asyncio.run(provider.create_customer(UUID("12345678-1234-5678-1234-567812345678"), "k@example.com"))
    assert http.requests[-1].headers["Authorization"] == "Bearer sk_test_given"
    assert http.api.customers[customer_id]["metadata"]["tenant_id"] == "12345678-1234-5678-1234-567812345678"

    payload = json.dumps({"id": "evt_1", "type": "customer.created"})
    provider.sync.verify_webhook(payload, sf.sign(payload, secret="whsec_given_0123"))
    with pytest.raises(WebhookSignatureError):
        provider.sync.verify_webhook(payload, sf.sign(payload, secret="whsec_from_settings"))
    with pytest.raises(WebhookSignatureError):
        provider.sync.verify_webhook(payload + " ", sf.sign(payload, secret="whsec_given_0123"))
