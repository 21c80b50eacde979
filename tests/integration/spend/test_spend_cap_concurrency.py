"""Proof on DynamoDB Local: 32 threads (each its own container: its own caches) take three priced
resources (graduated tiers with a flat amount past included units on a soft quota, volume tiers on an
unlimited one, a per-unit price on a hard quota) under one hard spend cap, half of the takes with
idempotency keys, a third of those sent again (a client's retry). On the graduated and per-unit resources
a sixth of the operations are reservations (reserved with a key, a third of them sent again, then settled
below, at or above the estimate, or cancelled) and a tenth releases of an earlier keyed consume. (No
give-back on the volume-tiered resource: giving units back there can raise its line, the one documented way
past a cap.) Checked at the end:

- per resource, the spend item's usage == the quota counter's `used` == the independent sum of the
  quantities granted (each key counted once, less what releases gave back, reservations at what their
  settles charged);
- the stored spend == an independent rating (`rate`, from the catalog's prices) of those sums, per line
  and in total, and never above the cap;
- every `spend_cap_reached` was justified: the spend it read plus the take's cost passed the cap, and the
  take's cost is the rating's difference at the usage it read;
- the invoice preview's total == the plan fee + the same independent rating.

The mutation drops the cap's condition from the spend write and requires the cap to be passed.
"""

from __future__ import annotations

import random
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing_platform.costs.service import CostService
from billing_platform.entitlements.service import EntitlementService
from billing_platform.errors import QuotaExceededError, RateLimitedError, SpendCapReachedError
from billing_platform.rating import rate
from billing_platform.reservations import Reservation, ReservationService
from billing_platform.spend import repository as spend_repository
from billing_platform.spend.models import SpendCapRequest
from tests.factories.spend import SpendHarness

pytestmark = [pytest.mark.ddblocal, pytest.mark.xdist_group("ddblocal")]

THREADS = 32
TAKES = 24
CAP = 12_000  # cents: reached part-way through the run
RESOURCES = ("tokens", "calls", "gpu")
ZERO = Decimal(0)
TTL = timedelta(minutes=10)  # no hold expires during the run


GIVE_BACK = ("tokens", "gpu")  # graduated and per unit: a give-back never raises the line


@dataclass
class Ledger:
    lock: threading.Lock = field(default_factory=threading.Lock)
    granted: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    keys: dict[str, Decimal] = field(default_factory=dict)  # idempotency key -> quantity granted
    refusals: list[SpendCapReachedError] = field(default_factory=list)
    quota_denials: int = 0
    replays: int = 0
    reservations: Counter[str] = field(default_factory=Counter)  # outcome -> how many
    released: Decimal = ZERO


def _reserve_and_resolve(
    reservations: ReservationService, rng: random.Random, name: str, resource: str, ledger: Ledger
) -> None:
    estimate = Decimal(rng.randint(1, 40))
    held = None
    for _send in range(2 if rng.random() < 0.33 else 1):
        try:
            held, _replayed = reservations.reserve("acme", resource, estimate, ttl=TTL, idempotency_key=name)
        except SpendCapReachedError as refused:
            with ledger.lock:
                ledger.refusals.append(refused)
                ledger.reservations["refused_by_cap"] += 1
            return
        except QuotaExceededError:
            with ledger.lock:
                ledger.reservations["refused_by_quota"] += 1
            return
        except RateLimitedError:
            continue
    if held is None:
        return
    if rng.random() < 0.25:
        _resolve(lambda: reservations.cancel("acme", held.reservation_id))
        with ledger.lock:
            ledger.reservations["cancelled"] += 1
        return
    actual = Decimal(rng.randint(0, 60))
    settled = _resolve(lambda: reservations.settle("acme", held.reservation_id, actual))
    with ledger.lock:
        ledger.granted[resource] += settled.charged
        ledger.reservations["settled_above" if actual > estimate else "settled"] += 1
        if settled.uncovered:
            ledger.reservations["uncovered"] += 1


def _resolve(resolution: Callable[[], tuple[Reservation, bool]]) -> Reservation:
    """A settle or cancel, sent again after a 429 (a resolution is idempotent: a resend replays)."""
    for _send in range(5):
        try:
            return resolution()[0]
        except RateLimitedError:
            continue
    return resolution()[0]


def _release_one(service: EntitlementService, rng: random.Random, index: int, ledger: Ledger) -> None:
    with ledger.lock:
        mine = [k for k in ledger.keys if k.startswith(f"k-{index}-") and k.split("|")[1] in GIVE_BACK]
    if not mine:
        return
    key = rng.choice(mine)
    resource = key.split("|")[1]
    answer = service.release("acme", resource, idempotency_key=key)
    with ledger.lock:
        ledger.granted[resource] -= answer.quantity
        ledger.released += answer.quantity


@pytest.fixture
def harness(ddb_local_tables: dict[str, str], dynamodb_local: Any) -> SpendHarness:
    return SpendHarness(ddb_local_tables, dynamodb_local.endpoint_url, threads=THREADS)


def _worker(harness: SpendHarness, index: int, ledger: Ledger, start: threading.Barrier) -> None:
    service = harness.service(seed=index)
    reservations = harness.reservations(service)
    rng = random.Random(1000 + index)
    start.wait()
    for n in range(TAKES):
        resource = rng.choice(RESOURCES)
        roll = rng.random()
        if resource in GIVE_BACK and roll < 1 / 6:
            _reserve_and_resolve(reservations, rng, f"r-{index}-{n}", resource, ledger)
            continue
        if resource in GIVE_BACK and roll < 1 / 6 + 1 / 10:
            _release_one(service, rng, index, ledger)
            continue
        quantity = Decimal(rng.randint(1, 40))
        key = f"k-{index}-{n}|{resource}" if rng.random() < 0.5 else None
        sends = 2 if key is not None and rng.random() < 0.33 else 1
        for _send in range(sends):
            try:
                answer = service.consume("acme", resource, quantity, idempotency_key=key)
            except SpendCapReachedError as refused:
                with ledger.lock:
                    ledger.refusals.append(refused)
                break
            except RateLimitedError:
                continue  # nothing was taken: the client may retry
            with ledger.lock:
                if not answer.allowed:
                    ledger.quota_denials += 1
                elif answer.replayed:
                    ledger.replays += 1
                    assert key is not None
                    assert ledger.keys[key] == quantity
                else:
                    assert key is None or key not in ledger.keys
                    ledger.granted[resource] += quantity
                    if key is not None:
                        ledger.keys[key] = quantity


def _run(harness: SpendHarness) -> Ledger:
    harness.start("acme", SpendCapRequest(currency="usd", amount=CAP))
    ledger = Ledger()
    start = threading.Barrier(THREADS)
    with ThreadPoolExecutor(THREADS) as pool:
        for future in [pool.submit(_worker, harness, i, ledger, start) for i in range(THREADS)]:
            future.result()
    return ledger


def _stored(harness: SpendHarness) -> tuple[spend_repository.SpendState, dict[str, Decimal]]:
    service = harness.service()
    _end, state = service.spend_caps.state("acme")
    used = {r: service.check("acme", r, Decimal(1)).used for r in RESOURCES}
    return state, used


def test_spend_equals_the_rating_of_the_usage_and_never_passes_the_cap(harness: SpendHarness) -> None:
    ledger = _run(harness)
    state, counters = _stored(harness)
    prices = {r: p.price for r, p in harness.catalog.plan("metered").pricing.resources.items()}  # type: ignore[union-attr]
    rated = {r: rate(prices[r], ledger.granted[r]).raw for r in RESOURCES}
    for resource in RESOURCES:
        assert state.used_of(resource) == counters[resource] == ledger.granted[resource], resource
        assert state.spent_of(resource) == rated[resource], resource
    assert state.total == sum(rated.values())
    assert state.total <= CAP
    assert ledger.refusals, "the cap was never reached: the run proves nothing about it"
    assert ledger.reservations["settled"], "no reservation was settled below its estimate"
    assert ledger.reservations["settled_above"], "no reservation was settled above its estimate"
    assert ledger.released, "no release gave anything back"
    for refused in ledger.refusals:
        detail = refused.refused
        assert detail.scope == "period"
        assert detail.spend + detail.cost > detail.cap == CAP
    preview = CostService(harness.service()).invoice_preview("acme")
    assert preview.total == 1000 + sum(rate(prices[r], ledger.granted[r]).amount for r in RESOURCES)
    assert preview.total == 1000 + state.total  # integer prices: the lines' rounding changes nothing
    print(  # the proof's numbers, for the closing note
        f"\nspend proof: threads={THREADS} operations={THREADS * TAKES} granted={dict(ledger.granted)} "
        f"replays={ledger.replays} cap_refusals={len(ledger.refusals)} quota_denials={ledger.quota_denials} "
        f"reservations={dict(ledger.reservations)} released={ledger.released} "
        f"spend={state.total} cap={CAP} preview_total={preview.total}"
    )


def test_mutation_without_the_cap_condition_passes_the_cap(
    harness: SpendHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_cap(name: str, bound: Decimal, values: dict[str, Any], placeholder: str) -> str:
        return f"(attribute_not_exists({name}) OR attribute_exists({name}))"

    monkeypatch.setattr(spend_repository, "_at_most", no_cap)
    _run(harness)
    state, _counters = _stored(harness)
    assert state.total > CAP


def test_quota_denials_still_come_from_the_quota(harness: SpendHarness) -> None:
    harness.start("acme", SpendCapRequest(currency="usd", amount=10**9))
    service = harness.service()
    assert service.consume("acme", "gpu", Decimal(400)).allowed
    answer = service.consume("acme", "gpu", Decimal(1))
    assert not answer.allowed
    assert answer.reason is not None
