"""Which provider runs, where its secrets come from, the webhook signature check, and the mock."""

from __future__ import annotations

import asyncio
import time

import boto3
import pytest

from billing_platform.errors import (
    PaymentRequiredError,
    ProviderAuthenticationError,
    ProviderInvalidRequestError,
    ProviderNotFoundError,
    WebhookSignatureError,
)
from billing_platform.providers.factory import create_billing_provider
from billing_platform.providers.mock import MockBillingProvider
from billing_platform.providers.stripe import StripeBillingProvider, resolve_secret, verify_webhook, webhook_secret
from billing_platform.settings import Settings
from tests.factories import stripe as sf


@pytest.mark.parametrize("environment", ["development", "test", "staging", "Production", ""])
def test_anything_but_production_selects_the_mock(environment: str) -> None:
    assert isinstance(create_billing_provider(Settings(environment=environment)), MockBillingProvider)


def test_production_selects_stripe() -> None:
    assert isinstance(create_billing_provider(Settings(environment="production")), StripeBillingProvider)


def test_billing_provider_overrides_the_environment() -> None:
    # The local stack with a developer's Stripe test-mode key: Stripe in development.
    assert isinstance(create_billing_provider(Settings(billing_provider="stripe")), StripeBillingProvider)
    mock = Settings(environment="production", billing_provider="mock")
    assert isinstance(create_billing_provider(mock), MockBillingProvider)


def test_billing_provider_is_read_from_the_environment_and_checked() -> None:
    assert Settings.from_env({"BILLING_PROVIDER": "stripe"}).uses_stripe
    assert not Settings.from_env({"ENVIRONMENT": "production", "BILLING_PROVIDER": "mock"}).uses_stripe
    with pytest.raises(ValueError, match="billing_provider"):
        Settings.from_env({"BILLING_PROVIDER": "paypal"})


def test_secrets_come_from_secrets_manager_by_arn(moto_aws: dict[str, str]) -> None:
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    arn = sm.create_secret(Name="billing/stripe-webhook", SecretString="whsec_from_sm_0123")["ARN"]

    assert webhook_secret(Settings(stripe_webhook_secret_arn=arn)) == "whsec_from_sm_0123"
    # cached (Powertools parameters): a deleted secret is still served within max_age
    sm.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    assert webhook_secret(Settings(stripe_webhook_secret_arn=arn)) == "whsec_from_sm_0123"


def test_plain_env_value_wins_and_nothing_configured_is_an_error() -> None:
    assert resolve_secret("sk_test_plain", "arn:aws:secretsmanager:x", "key") == "sk_test_plain"
    with pytest.raises(ProviderAuthenticationError):
        resolve_secret(None, None, "Stripe API key")


def test_settings_repr_never_shows_secrets() -> None:
    settings = Settings(stripe_secret_key="sk_test_hidden", stripe_webhook_secret="whsec_hidden")
    assert "hidden" not in repr(settings)


def test_verify_webhook_accepts_stripes_signature_and_rejects_the_rest() -> None:
    payload = '{"id": "evt_1", "object": "event"}'
    verify_webhook(payload, sf.sign(payload), sf.WEBHOOK_SECRET)
    verify_webhook(payload.encode(), sf.sign(payload), sf.WEBHOOK_SECRET)
    bad = [
        (payload + " ", sf.sign(payload)),
        (payload, sf.sign(payload, timestamp=int(time.time()) - 301)),
        (payload, None),
        (payload, sf.sign(payload, secret="whsec_other")),
    ]
    for body, header in bad:
        with pytest.raises(WebhookSignatureError):
            verify_webhook(body, header, sf.WEBHOOK_SECRET)


# ------------------------------------------------------------------------------------------ mock


def test_mock_provider_is_stripe_shaped_and_emits_events() -> None:
    events: list[dict[str, object]] = []
    provider = MockBillingProvider(event_sink=events.append)

    async def seed() -> str:
        customer_id = await provider.create_customer("t_mock", "m@example.com", "Mock")
        sub = await provider.create_subscription(customer_id, "price_pro_monthly")
        await provider.update_subscription(sub.id, "price_enterprise_monthly")
        await provider.cancel_subscription(sub.id)
        return sub.id

    sub_id = asyncio.run(seed())
    assert sub_id.startswith("sub_")
    assert [e["type"] for e in events] == [
        "customer.created",
        "customer.subscription.created",
        "invoice.paid",
        "customer.subscription.updated",
        "customer.subscription.updated",
    ]
    assert all(str(e["id"]).startswith("evt_") for e in events)
    sub = provider.sync.get_subscription(sub_id)
    assert (sub.price_id, sub.cancel_at_period_end) == ("price_enterprise_monthly", True)
    assert sub.current_period_end is not None


def test_mock_provider_replays_idempotent_calls_and_raises_typed_errors() -> None:
    provider = MockBillingProvider(decline_emails=frozenset({"declined@example.com"})).sync
    first = provider.create_customer("t1", "a@example.com", idempotency_key="k1")
    assert provider.create_customer("t1", "a@example.com", idempotency_key="k1") == first
    with pytest.raises(ProviderNotFoundError):
        provider.get_subscription("sub_missing")
    with pytest.raises(ProviderNotFoundError):
        provider.create_subscription(first, "price_unknown")
    declined = provider.create_customer("t2", "declined@example.com")
    with pytest.raises(PaymentRequiredError) as caught:
        provider.create_subscription(declined, "price_pro_monthly")
    assert caught.value.provider_code == "card_declined"
    sub = provider.create_subscription(first, "price_pro_monthly")
    provider.cancel_subscription(sub.id, immediate=True)
    with pytest.raises(ProviderInvalidRequestError):
        provider.update_subscription(sub.id, "price_free_monthly")
