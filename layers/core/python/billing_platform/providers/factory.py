"""Which provider a process uses: `BILLING_PROVIDER=stripe|mock`, or when unset `ENVIRONMENT=production`
selects Stripe and anything else the mock.
One provider per container; the stripe SDK is imported only when Stripe is selected."""

from __future__ import annotations

from billing_platform.api.container import PerContainer
from billing_platform.providers.base import BillingProvider
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
