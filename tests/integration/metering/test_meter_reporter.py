"""The meter reporter against real tables (moto; DynamoDB Local for concurrency) and the real stripe SDK
over a fake HTTP transport that honours Stripe's rules: a POST with a known Idempotency-Key is replayed,
a meter event with a known identifier is rejected as a duplicate.

Each test checks the one number that matters: what Stripe would bill (the sum of accepted meter
events per customer and meter) equals the usage, after crashes, Stripe errors, reruns and races."""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing_platform.catalog import load_catalog
from billing_platform.metering.repository import MeterWatermarkRepository
from billing_platform.metering.service import MeterReporter, meter_identifier
from billing_platform.providers.meter_events import StripeMeterEvents
from billing_platform.subscriptions.models import SubscriptionRecord
from billing_platform.subscriptions.repository import SubscriptionRepository
from billing_platform.usage.aggregator import UsageAggregationService, UsageInsert
from billing_platform.usage.repository import AggregateRepository
from tests.factories import stripe as fake_stripe
from tests.factories.stripe import FakeStripeApi, FakeStripeHTTPClient, stripe_client

NOW = datetime(2026, 11, 25, 12, 30, tzinfo=UTC)
H09 = datetime(2026, 11, 25, 9, 15, tzinfo=UTC)
H10 = datetime(2026, 11, 25, 10, 40, tzinfo=UTC)
YESTERDAY = datetime(2026, 11, 24, 23, 5, tzinfo=UTC)
# Stripe's published example `billing.meter_event` (stripe/openapi fixtures3.json, unchanged): the
# factories' fixture subset does not carry it.
METER_EVENT_EXAMPLE: dict[str, Any] = {
    "created": 1234567890,
    "event_name": "api_request",
    "identifier": "1234-1234",
    "livemode": False,
    "object": "billing.meter_event",
    "payload": {"stripe_customer_id": "cus_123", "value": "25"},
    "timestamp": 1234567890,
}


class MeteredStripeApi(FakeStripeApi):
    """FakeStripeApi plus `POST /v1/billing/meter_events` (identifier unique, as Stripe enforces) and
    `GET /v1/events` (newest first, cursor pagination). Thread-safe."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.RLock()
        self.meter_events: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []

    def billed(self, event_name: str, customer_id: str) -> Decimal:
        return sum(
            (
                Decimal(e["payload"]["value"])
                for e in self.meter_events
                if e["event_name"] == event_name and e["payload"]["stripe_customer_id"] == customer_id
            ),
            Decimal(0),
        )

    def handle(self, method: str, path: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            if path == "/v1/billing/meter_events" and method == "post":
                return self._meter_event(params)
            if path == "/v1/events" and method == "get":
                return self._list_events(params)
            return super().handle(method, path, params)

    def _meter_event(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        identifier = params["identifier"]
        if any(e["identifier"] == identifier for e in self.meter_events):
            return 400, {
                "error": {
                    "type": "invalid_request_error",
                    "message": f"An event already exists with identifier {identifier}.",
                }
            }
        obj = copy.deepcopy(METER_EVENT_EXAMPLE)
        obj.update(
            event_name=params["event_name"],
            identifier=identifier,
            timestamp=int(params["timestamp"]),
            created=self._now(),
            payload={
                "stripe_customer_id": params["payload[stripe_customer_id]"],
                "value": params["payload[value]"],
            },
        )
        self.meter_events.append(obj)
        return 200, obj

    def _list_events(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        low = int(params.get("created[gte]", 0))
        high = int(params.get("created[lte]", 2**62))
        types = {v for k, v in params.items() if k.startswith("types[")}
        chosen = [e for e in self.events if low <= e["created"] <= high and (not types or e["type"] in types)]
        chosen.sort(key=lambda e: (e["created"], e["id"]), reverse=True)
        if "starting_after" in params:
            ids = [e["id"] for e in chosen]
            chosen = chosen[ids.index(params["starting_after"]) + 1 :]
        limit = int(params.get("limit", 10))
        return 200, {"object": "list", "url": "/v1/events", "has_more": len(chosen) > limit, "data": chosen[:limit]}


class LockedHTTPClient(FakeStripeHTTPClient):
    """The shared fake transport, serialised: reporters in threads share one fake Stripe."""

    def __init__(self, api: FakeStripeApi) -> None:
        super().__init__(api)
        self._lock = threading.Lock()

    def _answer(self, *args: Any) -> tuple[str, int, dict[str, str]]:
        with self._lock:
            return super()._answer(*args)


# ----------------------------------------------------------------------------------------- helpers


_SEQUENCE = itertools.count(10**20)


def add_usage(tenant_id: str, resource: str, at: datetime, quantity: str) -> None:
    """Fold usage into the read model exactly as the aggregator does with a stream insert."""
    insert = UsageInsert(str(next(_SEQUENCE)), "w_seed_00", tenant_id, resource, Decimal(quantity), at)
    assert UsageAggregationService(repository=AggregateRepository()).apply([insert]).applied == 1


def subscribe(tenant_id: str, customer_id: str, plan_id: str, status: str = "active") -> None:
    catalog = load_catalog()
    price_id = catalog.plan(plan_id).prices[0]
    SubscriptionRepository().save_subscription(
        SubscriptionRecord(
            tenant_id=tenant_id,
            subscription_id=f"sub_{tenant_id}",
            customer_id=customer_id,
            status=status,
            price_id=price_id,
            plan_id=plan_id,
            subscription_created=NOW - timedelta(days=10),
            current_period_start=NOW - timedelta(days=10),
            current_period_end=NOW + timedelta(days=20),
            version=1,
        ),
        None,
    )


def reporter(http: FakeStripeHTTPClient, **kwargs: Any) -> MeterReporter:
    sender = StripeMeterEvents(client=stripe_client(http), sleep=lambda _s: None)
    kwargs.setdefault("clock", lambda: NOW)
    kwargs.setdefault("lookback_days", 2)
    return MeterReporter(sender, **kwargs)


def meter_posts(http: FakeStripeHTTPClient) -> list[fake_stripe.RecordedRequest]:
    return [r for r in http.requests if r.path == "/v1/billing/meter_events"]


@pytest.fixture
def stripe_api() -> MeteredStripeApi:
    return MeteredStripeApi()


@pytest.fixture
def http(stripe_api: MeteredStripeApi) -> FakeStripeHTTPClient:
    return LockedHTTPClient(stripe_api)


@pytest.fixture
def pro_tenant(moto_aws: dict[str, str]) -> str:
    subscribe("t_pro", "cus_pro", "pro")
    return "t_pro"


# ----------------------------------------------------------------------------------------- behaviour


def test_reports_each_metered_hour_once_with_customer_value_timestamp_and_identifier(
    pro_tenant: str, http: FakeStripeHTTPClient, stripe_api: MeteredStripeApi
) -> None:
    add_usage(pro_tenant, "tokens", H09, "1200")
    add_usage(pro_tenant, "tokens", H10, "300.5")
    add_usage(pro_tenant, "api_calls", H10, "7")
    add_usage(pro_tenant, "executions", H10, "9")  # not metered on pro

    report = reporter(http).run()

    assert report.events_sent == 3
    assert report.events_failed == 0
    assert report.lag_seconds == 0
    sent = {(e["event_name"], e["timestamp"]): e for e in stripe_api.meter_events}
    tokens_09 = sent[("tokens", int(datetime(2026, 11, 25, 9, tzinfo=UTC).timestamp()))]
    assert tokens_09["payload"] == {"stripe_customer_id": "cus_pro", "value": "1200"}
    assert tokens_09["identifier"] == meter_identifier(pro_tenant, "tokens", "2026-11-25T09", Decimal(1200))
    assert sent[("tokens", int(datetime(2026, 11, 25, 10, tzinfo=UTC).timestamp()))]["payload"]["value"] == "300.5"
    assert stripe_api.billed("api_calls", "cus_pro") == 7
    assert "executions" not in {e["event_name"] for e in stripe_api.meter_events}
    # The identifier is also the idempotency key of the request.
    assert {r.idempotency_key for r in meter_posts(http)} == {
        f"meter-{e['identifier']}" for e in stripe_api.meter_events
    }

    again = reporter(http).run()
    assert again.events_sent == 0
    assert again.tenant_days_checked == 0
    assert len(meter_posts(http)) == 3


def test_late_usage_in_an_already_reported_hour_is_reported_as_its_own_delta(
    pro_tenant: str, http: FakeStripeHTTPClient, stripe_api: MeteredStripeApi
) -> None:
    add_usage(pro_tenant, "tokens", H09, "100")
    reporter(http).run()
    add_usage(pro_tenant, "tokens", H09, "25")
    add_usage(pro_tenant, "tokens", YESTERDAY, "40")  # late, in yesterday's hour

    report = reporter(http).run()

    assert report.events_sent == 2
    values = sorted(e["payload"]["value"] for e in stripe_api.meter_events)
    assert values == ["100", "25", "40"]
    assert len({e["identifier"] for e in stripe_api.meter_events}) == 3
    assert stripe_api.billed("tokens", "cus_pro") == 165


class Crash(Exception):
    pass


@pytest.mark.parametrize("stripe_remembers_idempotency_key", [True, False], ids=["replayed", "identifier-dedup"])
def test_crash_between_send_and_watermark_resends_the_same_event_and_stripe_deduplicates_it(
    pro_tenant: str,
    http: FakeStripeHTTPClient,
    stripe_api: MeteredStripeApi,
    monkeypatch: pytest.MonkeyPatch,
    stripe_remembers_idempotency_key: bool,
) -> None:
    add_usage(pro_tenant, "tokens", H09, "500")
    real_commit = MeterWatermarkRepository.commit

    def crash(*_args: Any, **_kwargs: Any) -> bool:
        raise Crash("Lambda died after Stripe accepted the event")

    monkeypatch.setattr(MeterWatermarkRepository, "commit", crash)
    with pytest.raises(Crash):
        reporter(http).run()
    assert stripe_api.billed("tokens", "cus_pro") == 500
    monkeypatch.setattr(MeterWatermarkRepository, "commit", real_commit)

    # More usage lands in the same hour before the next run: the claim is finished first, unchanged.
    add_usage(pro_tenant, "tokens", H09, "20")
    transport = http if stripe_remembers_idempotency_key else LockedHTTPClient(stripe_api)
    report = reporter(transport).run()

    assert report.events_already_delivered == 1
    assert report.events_sent == 1
    assert stripe_api.billed("tokens", "cus_pro") == 520
    assert [e["payload"]["value"] for e in stripe_api.meter_events] == ["500", "20"]
    assert reporter(transport).run().events_sent == 0


@pytest.mark.parametrize(
    ("status", "error_type", "times"),
    [(500, "api_error", 3), (429, "rate_limit_error", 4), (503, "api_error", 3)],
    ids=["500", "429", "503"],
)
def test_stripe_errors_leave_the_claim_for_the_next_run_never_skipping_or_doubling(
    pro_tenant: str,
    http: FakeStripeHTTPClient,
    stripe_api: MeteredStripeApi,
    status: int,
    error_type: str,
    times: int,
) -> None:
    add_usage(pro_tenant, "tokens", H09, "80")
    # Enough failures to exhaust the SDK's retries (5xx) or the sender's backoff (429).
    http.fail_next(status, error_type, message="Stripe is having a bad day", times=times)

    failed = reporter(http).run()

    assert failed.events_sent == 0
    assert failed.events_failed == 1
    assert failed.lag_seconds == int((NOW - datetime(2026, 11, 25, 9, tzinfo=UTC)).total_seconds())
    assert stripe_api.billed("tokens", "cus_pro") == 0

    recovered = reporter(http).run()
    assert recovered.events_sent == 1
    assert recovered.lag_seconds == 0
    assert stripe_api.billed("tokens", "cus_pro") == 80
    # Every attempt carried the same identifier: the retried request is the claimed one.
    assert len({r.params["identifier"] for r in meter_posts(http)}) == 1


def test_a_stripe_outage_stops_the_run_early_and_the_next_run_catches_up(
    moto_aws: dict[str, str], http: FakeStripeHTTPClient, stripe_api: MeteredStripeApi
) -> None:
    subscribe("t_a", "cus_a", "pro")
    for hour in range(6):
        add_usage("t_a", "tokens", datetime(2026, 11, 25, hour, 30, tzinfo=UTC), "10")
    http.disconnect_next(times=3 * 3)  # three sends, each with the SDK's two retries

    outage = reporter(http).run()
    assert outage.stopped_early
    assert outage.events_failed == 3
    assert outage.events_sent == 0

    assert reporter(http).run().events_sent == 6
    assert stripe_api.billed("tokens", "cus_a") == 60


def test_rejected_customer_is_reported_as_a_failure_and_other_tenants_still_go_through(
    moto_aws: dict[str, str], http: FakeStripeHTTPClient, stripe_api: MeteredStripeApi
) -> None:
    subscribe("t_bad", "cus_bad", "pro")
    subscribe("t_good", "cus_good", "enterprise")
    add_usage("t_bad", "tokens", H09, "5")
    add_usage("t_good", "api_calls", H09, "6")
    http.fail_next(400, "invalid_request_error", code="resource_missing", message="No such customer: 'cus_bad'")

    report = reporter(http).run()

    assert report.events_failed == 1
    assert report.events_sent == 1
    assert report.failures[0]["tenant_id"] == "t_bad"
    assert stripe_api.billed("api_calls", "cus_good") == 6


@pytest.mark.parametrize(("plan", "status"), [("free", "active"), ("pro", "canceled")], ids=["free", "canceled"])
def test_usage_of_tenants_without_a_metered_live_plan_is_not_reported(
    moto_aws: dict[str, str], http: FakeStripeHTTPClient, stripe_api: MeteredStripeApi, plan: str, status: str
) -> None:
    subscribe("t_x", "cus_x", plan, status)
    add_usage("t_x", "tokens", H09, "50")
    add_usage("t_nobody", "tokens", H09, "50")  # no subscription at all

    report = reporter(http).run()

    assert report.events_sent == 0
    assert report.skipped_unmetered == 2
    assert stripe_api.meter_events == []


def test_usage_outside_the_lookback_window_is_not_read(
    pro_tenant: str, http: FakeStripeHTTPClient, stripe_api: MeteredStripeApi
) -> None:
    add_usage(pro_tenant, "tokens", NOW - timedelta(days=5), "1")
    assert reporter(http, lookback_days=2).run().events_sent == 0
    assert reporter(http, lookback_days=6).run().events_sent == 1


def test_late_usage_at_the_edge_of_stripes_35_day_window_gets_a_timestamp_stripe_accepts(
    pro_tenant: str, http: FakeStripeHTTPClient, stripe_api: MeteredStripeApi
) -> None:
    edge = NOW - timedelta(days=35) + timedelta(minutes=50)  # its hour started over 35 days ago
    add_usage(pro_tenant, "tokens", edge, "9")

    assert reporter(http, lookback_days=35).run().events_sent == 1

    (sent,) = stripe_api.meter_events
    assert sent["timestamp"] >= int((NOW - timedelta(days=35)).timestamp())
    hour_start = edge.replace(minute=0, second=0)
    assert sent["timestamp"] < int((hour_start + timedelta(hours=1)).timestamp())  # still inside its hour


def test_deadline_stops_claiming_new_work(
    pro_tenant: str, http: FakeStripeHTTPClient, stripe_api: MeteredStripeApi
) -> None:
    add_usage(pro_tenant, "tokens", H09, "3")
    report = reporter(http, should_continue=lambda: False).run()
    assert report.stopped_early
    assert report.events_sent == 0
    assert report.lag_seconds > 0
    assert reporter(http).run().events_sent == 1


# ----------------------------------------------------------------------------------------- concurrency


@pytest.mark.ddblocal
def test_concurrent_runs_with_usage_still_arriving_bill_exactly_the_usage(ddb_local_tables: dict[str, str]) -> None:
    """Four reporters race each other and a writer adding late usage; then one final run. On DynamoDB
    Local (conditional writes are exact under threads; moto's are not)."""
    api = MeteredStripeApi()
    http = LockedHTTPClient(api)
    subscribe("t_race", "cus_race", "pro")
    hours = [datetime(2026, 11, 25, h, 10, tzinfo=UTC) for h in range(8, 12)]
    for at in hours:
        add_usage("t_race", "tokens", at, "10")
    # Yesterday's hours too: two tenant-days, so each reporter's worker pool runs them in parallel.
    add_usage("t_race", "tokens", YESTERDAY, "10")
    added = Decimal(50)
    errors: list[BaseException] = []
    start = threading.Barrier(5)

    def guarded(fn: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            start.wait()
            try:
                fn()
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        return run

    def writer() -> None:
        nonlocal added
        for i in range(12):
            add_usage("t_race", "tokens", hours[i % 4], "1.5")
            added += Decimal("1.5")

    def race() -> None:
        for _ in range(3):
            reporter(http, lookback_days=1, workers=3).run()

    threads = [threading.Thread(target=guarded(race)) for _ in range(4)] + [threading.Thread(target=guarded(writer))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    final = reporter(http, lookback_days=1).run()
    assert final.events_failed == 0

    assert api.billed("tokens", "cus_race") == added == Decimal(68)
    identifiers = [e["identifier"] for e in api.meter_events]
    assert len(identifiers) == len(set(identifiers))
    assert reporter(http, lookback_days=1).run().events_sent == 0


# ----------------------------------------------------------------------------------------- event listing


def test_list_events_pages_through_stripe_and_returns_oldest_first(stripe_api: MeteredStripeApi) -> None:
    http = LockedHTTPClient(stripe_api)
    base = int(NOW.timestamp())
    for i in range(130):
        evt = fake_stripe.event("customer.created", fake_stripe.customer(), created=base - i, event_id=f"evt_{i:04d}")
        stripe_api.events.append(evt)
    stripe_api.events.append(fake_stripe.event("plan.created", {"id": "plan_x"}, created=base, event_id="evt_plan"))
    source = StripeMeterEvents(client=stripe_client(http), sleep=lambda _s: None)

    listed = list(source.list_events(NOW - timedelta(seconds=200), types=("customer.created",)))

    assert len(listed) == 130
    assert [e["created"] for e in listed] == sorted(e["created"] for e in listed)
    assert listed[0]["id"] == "evt_0129"
    assert listed[-1]["data"]["object"]["object"] == "customer"
    pages = [r for r in http.requests if r.path == "/v1/events"]
    assert len(pages) == 2
    assert pages[0].params["types[0]"] == "customer.created"


def test_list_events_failures_leave_as_typed_errors(stripe_api: MeteredStripeApi) -> None:
    from billing_platform.errors import ProviderAuthenticationError

    http = LockedHTTPClient(stripe_api)
    http.fail_next(401, "invalid_request_error", message="Invalid API Key provided: sk_test_****")
    source = StripeMeterEvents(client=stripe_client(http), sleep=lambda _s: None)
    with pytest.raises(ProviderAuthenticationError):
        list(source.list_events(NOW - timedelta(hours=1)))
