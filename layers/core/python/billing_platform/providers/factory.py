"""Which provider a process uses: `BILLING_PROVIDER=stripe|mock`, or when unset `ENVIRONMENT=production`
selects Stripe and anything else the mock.
One provider per container; the stripe SDK is imported only when Stripe is selected."""

from __future__ import annotations

import threading

from billing_platform.providers.base import BillingProvider
from billing_platform.settings import Settings, get_settings

_lock = threading.Lock()
_provider: BillingProvider | None = None


def create_billing_provider(settings: Settings) -> BillingProvider:
    if settings.uses_stripe:
        from billing_platform.providers.stripe import StripeBillingProvider

        return StripeBillingProvider(settings)
    from billing_platform.providers.mock import MockBillingProvider

    return MockBillingProvider()


def get_billing_provider() -> BillingProvider:
    """The process-wide provider, created on first use from the settings."""
    global _provider
    with _lock:
        if _provider is None:
            _provider = create_billing_provider(get_settings())
        return _provider


def set_billing_provider(provider: BillingProvider | None) -> None:
    """Install a provider for this process (the local stack's event-emitting mock, tests); None forgets
    it so the next use builds one from the settings again."""
    global _provider
    with _lock:
        _provider = provider
