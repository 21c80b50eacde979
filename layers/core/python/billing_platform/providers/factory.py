"""Which provider a process uses: `BILLING_PROVIDER=stripe|mock`, or when unset `ENVIRONMENT=production`
selects Stripe and anything else the mock.
One provider per container; the stripe SDK is imported only when Stripe is selected."""

from __future__ import annotations

from typing import Any, Literal

from billing_platform.container import PerContainer
from billing_platform.providers.base import BillingProvider, ProviderCustomer, ProviderSubscription
from billing_platform.settings import Settings, get_settings


def create_billing_provider(settings: Settings) -> BillingProvider:
    if settings.uses_stripe:
        from billing_platform.providers.stripe import StripeBillingProvider

        return StripeBillingProvider(settings)
    from billing_platform.providers.mock import MockBillingProvider

    return MockBillingProvider()


# The process-wide provider, created on first use from the settings.
get_billing_provider = PerContainer(lambda: create_billing_provider(get_settings()))


def set_billing_provider(provider: BillingProvider | None) -> None:
    """Install a provider for this process (the local stack's event-emitting mock, tests); None forgets
    it so the next use builds one from the settings again."""
    if provider is None:
        get_billing_provider.reset()
    else:
        get_billing_provider.use(provider)


class ProviderOnCall:
    """The process-wide provider's blocking face (`SyncBillingProvider`), looked up at each call instead
    of when this is built. A Stripe webhook that needs no Stripe call (most subscription events, every
    duplicate) then never builds the provider, nor imports the Stripe SDK (a large part of a cold start); and a
    provider installed later (`set_billing_provider`) is the one called."""

    def create_customer(self, *args: Any, **kwargs: Any) -> str:
        return get_billing_provider().sync.create_customer(*args, **kwargs)

    def get_customer(self, customer_id: str) -> ProviderCustomer:
        return get_billing_provider().sync.get_customer(customer_id)

    def create_subscription(self, *args: Any, **kwargs: Any) -> ProviderSubscription:
        return get_billing_provider().sync.create_subscription(*args, **kwargs)

    def update_subscription(self, *args: Any, **kwargs: Any) -> ProviderSubscription:
        return get_billing_provider().sync.update_subscription(*args, **kwargs)

    def cancel_subscription(self, *args: Any, **kwargs: Any) -> ProviderSubscription:
        return get_billing_provider().sync.cancel_subscription(*args, **kwargs)

    def get_subscription(self, subscription_id: str) -> ProviderSubscription:
        return get_billing_provider().sync.get_subscription(subscription_id)

    def list_line_items(
        self, object_type: Literal["checkout_session", "invoice"], object_id: str
    ) -> list[dict[str, Any]]:
        return get_billing_provider().sync.list_line_items(object_type, object_id)
