"""Billing providers: the `BillingProvider` interface, Stripe, and an in-memory mock.

Adapters of one interface rather than a domain, so laid out by provider instead of models / repository /
service: base.py: the interface and the Stripe-shaped objects it returns; stripe.py: the real SDK (the
only module that speaks to Stripe's API, with meter_events.py for meter events and the event log);
mock.py: an in-memory Stripe; factory.py: which one a process uses; stripe_signature.py: webhook
signatures, checked with the standard library.
"""

from billing_platform.providers.base import (
    BillingProvider,
    OffloadedProvider,
    ProviderCustomer,
    ProviderSubscription,
    SyncBillingProvider,
)
from billing_platform.providers.factory import get_billing_provider, set_billing_provider

__all__ = [
    "BillingProvider",
    "OffloadedProvider",
    "ProviderCustomer",
    "ProviderSubscription",
    "SyncBillingProvider",
    "get_billing_provider",
    "set_billing_provider",
]
