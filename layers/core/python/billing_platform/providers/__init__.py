"""Billing providers: the `BillingProvider` interface, Stripe, and an in-memory mock."""

from billing_platform.providers.base import (
    AsyncBillingProvider,
    BillingProvider,
    ProviderCustomer,
    ProviderSubscription,
    SyncBillingProvider,
)
from billing_platform.providers.factory import get_billing_provider, set_billing_provider

__all__ = [
    "AsyncBillingProvider",
    "BillingProvider",
    "ProviderCustomer",
    "ProviderSubscription",
    "SyncBillingProvider",
    "get_billing_provider",
    "set_billing_provider",
]
