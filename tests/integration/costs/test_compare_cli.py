"""`billing-admin invoice compare`: the real stripe SDK (its default HTTP transport) against the local
Stripe stand-in served on 127.0.0.1, which answers `POST /v1/invoices/create_preview` in Stripe's shape.
In sync: exit 0 and no differences; a line Stripe prices differently, a line only one side bills and the
total are each spelled out with exit 1; a live key is refused before anything is read."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing_platform.cli.main import EXIT_NOT_FOUND, EXIT_OK, EXIT_PROBLEMS
from billing_platform.entitlements.service import EntitlementService
from billing_platform.subscriptions.repository import SubscriptionRepository
from tests.factories.stripe import API_KEY, FakeStripeHTTPClient, customer, upcoming_invoice
from tests.factories.stripe_server import fake_stripe_server
from tests.integration.cli.test_cli import Run, cli

NOW = datetime.now(UTC).replace(microsecond=0)
PERIOD = {"period_start": NOW - timedelta(days=3), "period_end": NOW + timedelta(days=27)}


@pytest.fixture
def stripe(moto_aws: dict[str, str], env: pytest.MonkeyPatch) -> Iterator[FakeStripeHTTPClient]:
    with fake_stripe_server() as (url, fake):
        env.setenv("STRIPE_SECRET_KEY", API_KEY)
        env.setenv("STRIPE_API_BASE", url)
        cus = customer("cus_acme", tenant_id="acme", email="ops@acme.test", created=int(time.time()))
        fake.api.customers[cus["id"]] = cus
        assert SubscriptionRepository().bind_customer("acme", "cus_acme")
        entitlements = EntitlementService()
        entitlements.apply_plan("acme", "pro", **PERIOD, source_version=1)
        assert entitlements.consume("acme", "tokens", Decimal(3_000_000)).allowed  # 1M billable: 200 cents
        yield fake


def _stripe_says(fake: FakeStripeHTTPClient, lines: list[tuple[str, int, int]]) -> None:
    fake.api.upcoming["cus_acme"] = upcoming_invoice("cus_acme", lines, created=int(time.time()))


def test_in_sync_when_stripe_bills_the_same_lines(stripe: FakeStripeHTTPClient) -> None:
    _stripe_says(stripe, [("price_pro_monthly", 2900, 1), ("price_pro_tokens", 200, 3_000_000)])
    run = cli("--json", "invoice", "compare", "acme")
    assert run.code == EXIT_OK, run.stdout + run.stderr
    assert run.json["in_sync"] is True
    assert run.json["differences"] == []
    assert (run.json["our_total"], run.json["stripe_total"]) == (3100, 3100)
    paths = [r.path for r in stripe.requests]
    assert "/v1/invoices/create_preview" in paths


def test_each_difference_is_printed(stripe: FakeStripeHTTPClient) -> None:
    _stripe_says(stripe, [("price_pro_monthly", 2900, 1), ("price_pro_tokens", 201, 3_000_000), ("price_x", 5, 1)])
    run = cli("invoice", "compare", "acme")
    assert run.code == EXIT_PROBLEMS
    assert "price_pro_tokens: ours 200, Stripe's 201 (difference +1)" in run.stdout
    assert "price_x: Stripe bills 5, the platform has no such line" in run.stdout
    assert "total: ours 3100, Stripe's 3106 (+6)" in run.stdout


def test_a_live_key_is_refused(stripe: FakeStripeHTTPClient, env: pytest.MonkeyPatch) -> None:
    env.setenv("STRIPE_SECRET_KEY", "sk_live_" + "0" * 24)
    run = cli("invoice", "compare", "acme")
    assert run.code == EXIT_PROBLEMS
    assert "test-mode key only" in run.stderr
    assert stripe.requests == []


def test_a_tenant_without_a_customer_is_not_found(stripe: FakeStripeHTTPClient) -> None:
    run: Run = cli("invoice", "compare", "globex")
    assert run.code == EXIT_NOT_FOUND
    assert stripe.requests == []
