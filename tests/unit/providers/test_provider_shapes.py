"""Parsing Stripe's own example objects (fixtures3.json) of the API version the SDK pins: the billing
period lives on the subscription items, an invoice's subscription under `parent.subscription_details`."""

from __future__ import annotations

from datetime import UTC, datetime

from billing_platform.providers.base import ProviderCustomer, ProviderSubscription
from billing_platform.subscriptions.webhooks import invoice_subscription_id
from tests.factories import stripe as sf


def test_stripes_example_subscription_takes_its_period_from_the_item() -> None:
    raw = sf.fixture("subscription")
    item = raw["items"]["data"][0]
    assert "current_period_end" not in raw  # current API versions: no period on the subscription

    sub = ProviderSubscription.from_stripe(raw)

    assert (sub.id, sub.customer_id, sub.status) == (raw["id"], raw["customer"], raw["status"])
    assert sub.price_id == item["price"]["id"]
    assert sub.current_period_start == datetime.fromtimestamp(item["current_period_start"], UTC)
    assert sub.current_period_end == datetime.fromtimestamp(item["current_period_end"], UTC)
    assert sub.cancel_at_period_end is True
    assert sub.trial_end == datetime.fromtimestamp(raw["trial_end"], UTC)


def test_legacy_period_and_expanded_customer_still_parse() -> None:
    raw = sf.fixture("subscription")
    item = raw["items"]["data"][0]
    raw.update(current_period_start=100, current_period_end=200, customer={"id": "cus_expanded"})
    del item["current_period_start"], item["current_period_end"]

    sub = ProviderSubscription.from_stripe(raw)

    assert sub.customer_id == "cus_expanded"
    assert (sub.current_period_start, sub.current_period_end) == (
        datetime.fromtimestamp(100, UTC),
        datetime.fromtimestamp(200, UTC),
    )


def test_customer_tenant_comes_from_metadata_and_deleted_customers_parse() -> None:
    assert ProviderCustomer.from_stripe(sf.fixture("customer")).tenant_id is None
    assert ProviderCustomer.from_stripe(sf.customer("cus_1", tenant_id="t_meta")).tenant_id == "t_meta"
    deleted = ProviderCustomer.from_stripe(sf.fixture("deleted_customer"))
    assert deleted.deleted is True


def test_invoice_subscription_from_parent_details_or_the_legacy_field() -> None:
    raw = sf.fixture("invoice")
    assert raw["subscription"] is None
    assert invoice_subscription_id(raw) == raw["parent"]["subscription_details"]["subscription"]
    legacy = {**raw, "parent": None, "subscription": "sub_legacy"}
    assert invoice_subscription_id(legacy) == "sub_legacy"
    assert invoice_subscription_id({**raw, "parent": None}) is None
