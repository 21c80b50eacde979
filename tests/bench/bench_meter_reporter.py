"""Meter reporter benchmark on Amazon's DynamoDB Local: how long a run takes and how many DynamoDB
requests it makes (counted on the wire with botocore event hooks) for a backlog, for an idle run (the
cost every 15 minutes when nothing is new), and for late usage in a few hours.

The sender is the in-memory mock (Stripe's latency is not ours to measure: one meter event is one HTTPS
request, ~100-300 ms against api.stripe.com, so a real backlog run is bound by Stripe, not DynamoDB).

Run: `.venv/bin/python -m tests.bench bench_meter_reporter`.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
from botocore.config import Config

from billing_platform.metering.repository import MeterWatermarkRepository
from billing_platform.metering.service import MeterReporter
from billing_platform.providers.meter_events import MeterEvent, MeterEventOutcome, MockMeterEvents
from billing_platform.settings import Settings
from billing_platform.subscriptions.models import SubscriptionRecord
from billing_platform.subscriptions.repository import SubscriptionRepository
from billing_platform.usage.models import Granularity, bucket_label
from billing_platform.usage.repository import AggregateRepository
from local_stack.dynamodb_local import DynamoDBLocal
from local_stack.provision import create_tables

WORKERS = 8  # as functions/meter_reporter
TENANTS = 100
FREE_TENANTS = 100
HOURS = 24
NOW = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)


STRIPE_LATENCY = 0.05


class SlowSender:
    """The mock sender behind a fixed round-trip time, standing in for api.stripe.com."""

    def __init__(self, inner: MockMeterEvents) -> None:
        self._inner = inner

    def send(self, event: MeterEvent) -> MeterEventOutcome:
        time.sleep(STRIPE_LATENCY)
        return self._inner.send(event)


class RequestCounter:
    def __init__(self, client: Any) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        client.meta.events.register("before-send.dynamodb", self._count)

    def _count(self, request: Any, **_kwargs: Any) -> None:
        target = request.headers.get("X-Amz-Target", b"")
        name = target.decode() if isinstance(target, bytes) else str(target)
        with self._lock:
            self.counts[name.rsplit(".", 1)[-1]] += 1

    def take(self) -> Counter[str]:
        with self._lock:
            out, self.counts = self.counts, Counter()
        return out


def main() -> None:
    with DynamoDBLocal() as ddb:
        client = boto3.client(
            "dynamodb",
            endpoint_url=ddb.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            config=Config(retries={"mode": "standard", "max_attempts": 5}, account_id_endpoint_mode="disabled"),
        )
        names = create_tables(client, prefix="bench-")
        settings = Settings.from_env({**os.environ, **names})
        aggregates = AggregateRepository(settings, client)
        subscriptions = SubscriptionRepository(settings, client)
        start = NOW - timedelta(hours=HOURS - 1)
        for i in range(TENANTS + FREE_TENANTS):
            tenant = f"t{i:04d}"
            plan = "pro" if i < TENANTS else "free"
            subscriptions.save_subscription(
                SubscriptionRecord(
                    tenant_id=tenant,
                    subscription_id=f"sub_{tenant}",
                    customer_id=f"cus_{tenant}",
                    status="active",
                    price_id=f"price_{plan}_monthly",
                    plan_id=plan,
                    subscription_created=NOW - timedelta(days=3),
                ),
                None,
            )
            for h in range(HOURS):
                at = start + timedelta(hours=h)
                aggregates.transact(
                    [
                        aggregates.row_update(tenant, resource, g, bucket_label(g, at), Decimal(7), 1)
                        for resource in ("tokens", "api_calls")
                        for g in Granularity
                    ]
                )
        counter = RequestCounter(client)
        sender = MockMeterEvents()
        reporter = MeterReporter(
            sender,
            settings=settings,
            watermarks=MeterWatermarkRepository(settings, client),
            aggregates=aggregates,
            workers=WORKERS,
            clock=lambda: NOW,
            lookback_days=35,
        )

        def timed(label: str) -> None:
            began = time.perf_counter()
            report = reporter.run()
            took = time.perf_counter() - began
            requests = counter.take()
            total = sum(requests.values())
            per_event = total / report.events_sent if report.events_sent else float("nan")
            print(
                f"{label:<28} {took:7.2f} s  events {report.events_sent:5d}  "
                f"ddb requests {total:6d} ({per_event:.1f}/event)  {dict(sorted(requests.items()))}",
                flush=True,
            )

        print(
            f"{TENANTS} metered + {FREE_TENANTS} free tenants x 2 resources x {HOURS} h, 35-day look-back, "
            f"{WORKERS} workers"
        )
        timed("backlog run")
        timed("idle run (nothing new)")
        for i in range(0, TENANTS, 10):
            aggregates.transact(
                [
                    aggregates.row_update(f"t{i:04d}", "tokens", g, bucket_label(g, start), Decimal(1), 1)
                    for g in Granularity
                ]
            )
        counter.take()
        timed("late usage, 10 tenants")
        billed = sum(sender.total("tokens", f"cus_t{i:04d}") for i in range(TENANTS))
        print(f"tokens billed {billed} == usage {TENANTS * HOURS * 7 + TENANTS // 10}")

        # What the worker pool buys against a slow Stripe: each send sleeps STRIPE_LATENCY.
        for workers in (1, WORKERS):
            late = start + timedelta(hours=1 + workers % HOURS)
            for i in range(0, TENANTS, 2):  # 50 tenants, one new hour each
                aggregates.transact(
                    [
                        aggregates.row_update(f"t{i:04d}", "api_calls", g, bucket_label(g, late), Decimal(1), 1)
                        for g in Granularity
                    ]
                )
            slow = MeterReporter(
                SlowSender(sender),
                settings=settings,
                watermarks=MeterWatermarkRepository(settings, client),
                aggregates=aggregates,
                clock=lambda: NOW,
                lookback_days=35,
                workers=workers,
            )
            counter.take()
            began = time.perf_counter()
            report = slow.run()
            print(
                f"{report.events_sent} events, Stripe {STRIPE_LATENCY * 1000:.0f} ms each, {workers} worker(s): "
                f"{time.perf_counter() - began:.2f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
