"""Proof on DynamoDB Local: 36 threads reserve, settle (below, at, above the estimate), cancel, race a settle
against a cancel, or abandon reservations across the quota/grant boundary (a hard quota with three grants,
one of them expiring 12 minutes in), while a sweeper expires what is due; the clock finally moves past every expiry (and
the expiring grant's). Checked, live and at the end:

- quota used + grants drawn == settled charges + live holds + forfeited units (of the expired grant);
- per grant: 0 <= remaining <= amount, used + remaining == amount, and `used` equals what the reservations
  list it paid minus what their give-backs refilled (exact per grant); a give-back at or after the expiring
  grant's expiry forfeits that grant's part (recorded as `forfeited`), one before it refills it;
- every abandoned reservation expired and gave back (or forfeited) its whole estimate, once;
- the metered total equals the settled total.

Run for an unsharded quota and a 4-shard one. The mutation check makes the refill's guard always true (an expired
grant refilled) and requires the invariants to fail.
"""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing_platform.errors import ConflictError, QuotaExceededError, RateLimitedError
from billing_platform.grants.repository import GrantRepository
from billing_platform.reservations import Reservation, ReservationState
from billing_platform.reservations import repository as reservation_repository
from billing_platform.reservations.models import split_refill, usage_record_id
from tests.factories.grants import add_grant, grants_of
from tests.factories.reservations import Harness, Ledger, run_beside_sweeper, used

pytestmark = [pytest.mark.ddblocal, pytest.mark.xdist_group("ddblocal")]

THREADS = 36
ROUNDS = 8
TENANT = "grace"
FATES = ("below", "at", "above", "cancel", "race", "abandon")
LIMITS = {"hard": Decimal(5000), "sharded": Decimal(4000)}
ZERO = Decimal(0)


@dataclass
class Setup:
    harness: Harness
    plan: str
    grants: GrantRepository
    expiring: str
    ids: list[str]


def run_workload(setup: Setup, ledger: Ledger) -> None:
    harness = setup.harness
    services = [harness.service(seed=i) for i in range(THREADS)]
    start = threading.Barrier(THREADS + 1)
    racer_pool = ThreadPoolExecutor(max_workers=THREADS)

    def retried(call: Any, *args: Any, **kwargs: Any) -> Any:
        """A client retrying a 429 (every call here is safe to repeat: reserves carry a key)."""
        while True:
            try:
                return call(*args, **kwargs)
            except RateLimitedError:
                ledger.note(rate_limited=1)

    def refused(call: Any, *args: Any) -> None:
        try:
            retried(call, *args)
        except ConflictError:
            ledger.note(refused_409=1)

    def worker(index: int) -> None:
        rng = random.Random(index)
        service = services[index]
        start.wait()
        for round_ in range(ROUNDS):
            estimate = Decimal(rng.randrange(20, 200))
            ttl = timedelta(seconds=rng.choice([2, 3, 5, 600, 600]))
            try:
                key = f"w{index}-r{round_}"
                held, _ = retried(service.reserve, TENANT, "tokens", estimate, ttl=ttl, idempotency_key=key)
            except QuotaExceededError:
                ledger.note(denied=1)
                continue
            fate = rng.choice(FATES)
            with ledger.lock:
                ledger.reserved += 1
                ledger.ids.append(held.reservation_id)
                ledger.fates[fate] = ledger.fates.get(fate, 0) + 1
                if fate == "abandon":
                    ledger.abandoned.add(held.reservation_id)
            rid = held.reservation_id
            actual = {
                "below": estimate - Decimal(rng.randrange(1, int(estimate))),
                "at": estimate,
                "above": estimate + Decimal(rng.randrange(1, 300)),
            }.get(fate, Decimal(rng.randrange(0, 300)))
            try:
                if fate in ("below", "at", "above"):
                    refused(service.settle, TENANT, rid, actual)
                elif fate == "cancel":
                    refused(service.cancel, TENANT, rid)
                elif fate == "race":
                    pair = threading.Barrier(2)

                    def cancel_now(rid: str = rid, pair: threading.Barrier = pair) -> None:
                        pair.wait()
                        refused(services[(index + 1) % THREADS].cancel, TENANT, rid)

                    other = racer_pool.submit(cancel_now)
                    pair.wait()
                    refused(service.settle, TENANT, rid, actual)
                    other.result()
            except BaseException as exc:
                ledger.errors.append(exc)

    run_beside_sweeper(setup.harness, worker, THREADS, start)
    racer_pool.shutdown()


def reservations(setup: Setup, ledger: Ledger) -> list[Reservation]:
    service = setup.harness.service()
    return [service.get(TENANT, rid) for rid in ledger.ids]


def check(setup: Setup, ledger: Ledger, *, final: bool) -> dict[str, Any]:
    found = reservations(setup, ledger)
    grants = grants_of(setup.grants, TENANT, "tokens")
    settled = [r for r in found if r.state is ReservationState.SETTLED]
    held = [r for r in found if r.held]
    charged = sum((r.charged for r in settled), ZERO)
    holds = sum((r.estimate for r in held), ZERO)
    forfeited = sum((r.forfeited for r in found), ZERO)
    quota_used = used(setup.harness, TENANT)
    drawn = sum((g.used for g in grants.values()), ZERO)
    assert quota_used + drawn == charged + holds + forfeited, (
        f"quota {quota_used} + grants {drawn} != settled {charged} + holds {holds} + forfeited {forfeited}"
    )
    assert quota_used <= LIMITS[setup.plan]
    # Per grant: what the reservations say it paid, less what their give-backs refilled. A give-back at or
    # after the expiring grant's expiry must forfeit that grant's part (never revive it), and only then.
    expiry = grants[setup.expiring].valid_until
    assert expiry is not None
    paid: dict[str, Decimal] = {g: ZERO for g in grants}
    refilled: dict[str, Decimal] = {g: ZERO for g in grants}
    for r in found:
        for grant_id, quantity in r.grants:
            paid[grant_id] += quantity
        lost = ZERO
        if not r.held and r.charged < r.estimate:
            assert r.resolved_at is not None
            for grant_id, quantity in split_refill(r.grants, r.estimate - r.charged):
                if grant_id == setup.expiring and r.resolved_at >= expiry:
                    lost += quantity
                else:
                    refilled[grant_id] += quantity
        assert r.forfeited == lost, (r, lost)
    for grant_id, grant in grants.items():
        assert ZERO <= grant.remaining <= grant.amount, grant
        assert grant.used + grant.remaining == grant.amount, grant
        assert grant.used == paid[grant_id] - refilled[grant_id], (grant_id, grant.used, paid, refilled)
    for r in found:
        if r.state in (ReservationState.EXPIRED, ReservationState.CANCELLED):
            assert (r.given_back + r.forfeited, r.charged) == (r.estimate, ZERO), r
        elif r.state is ReservationState.SETTLED:
            assert r.charged + r.given_back + r.forfeited == max(r.estimate, r.charged), r
    if final:
        assert not held, "a reservation is still held"
        abandoned = [r for r in found if r.reservation_id in ledger.abandoned]
        assert all(r.state is ReservationState.EXPIRED for r in abandoned)
        metered = setup.harness.metered(TENANT)
        assert metered == {usage_record_id(r.reservation_id): r.charged for r in settled if r.charged > 0}
    return {
        "quota_used": quota_used,
        "grants_drawn": drawn,
        "settled": charged,
        "live_holds": holds,
        "forfeited": forfeited,
        "past_quota": sum(1 for r in found if r.grants),
        "straddling": sum(1 for r in found if r.grants and r.shards),
    }


def finish(harness: Harness) -> None:
    harness.clock.advance(timedelta(minutes=15))  # past every short expiry, the long ones and the grant's
    sweeper = harness.service(seed=1000)
    while True:
        report = sweeper.sweep()
        if not (report.expired or report.metered):
            break


def make_setup(names: dict[str, str], endpoint: str, plan: str, *, expiring_amount: int = 800) -> Setup:
    harness = Harness(names, endpoint, threads=2 * THREADS + 8)
    harness.apply(TENANT, plan)
    repo = GrantRepository(harness.settings, harness.client)
    expires = harness.clock() + timedelta(minutes=12)
    expiring = add_grant(repo, TENANT, "tokens", expiring_amount, priority=5, valid_until=expires)
    ids = [expiring, add_grant(repo, TENANT, "tokens", 1500, priority=10), add_grant(repo, TENANT, "tokens", 900)]
    return Setup(harness, plan, repo, expiring, ids)


@pytest.mark.parametrize("plan", ["hard", "sharded"])
def test_reservations_across_the_quota_grant_boundary_are_exact(
    ddb_local_tables: dict[str, str], dynamodb_local: Any, plan: str
) -> None:
    setup = make_setup(ddb_local_tables, dynamodb_local.endpoint_url, plan)
    ledger = Ledger()
    run_workload(setup, ledger)
    assert not ledger.errors, ledger.errors[:3]
    live = check(setup, ledger, final=False)
    # Holds still live on the expiring grant expire after it (the clock jumps past both): exactly their
    # part of that grant is forfeited, nothing else.
    on_expiring = sum(
        (q for r in reservations(setup, ledger) if r.held for g, q in r.grants if g == setup.expiring), ZERO
    )
    finish(setup.harness)
    final = check(setup, ledger, final=True)
    print(
        f"\n{plan}: {ledger.reserved} reserved, {ledger.denied} denied (402), {ledger.refused_409} refused 409, "
        f"{ledger.rate_limited} x 429 retried; "
        f"fates {ledger.fates}\nlive: {live}\nfinal: {final}\nheld on the expiring grant: {on_expiring}"
    )
    assert live["past_quota"] > 0  # the boundary was really crossed: reserves paid by grants,
    assert live["straddling"] > 0  # some by the quota's last units and grants together
    assert ledger.denied > 0
    assert live["live_holds"] > 0
    assert final["forfeited"] == on_expiring


def test_mutation_an_unguarded_refill_is_caught(
    ddb_local_tables: dict[str, str], dynamodb_local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = reservation_repository._refill_item

    def unguarded(table: str, refill: Any, now: Any) -> dict[str, Any]:
        item = original(table, refill, now)
        # Always true (every name and value still used): expired and voided grants revived too.
        guard = item["Update"]["ConditionExpression"]
        item["Update"]["ConditionExpression"] = f"attribute_exists(pk) OR ({guard})"
        return item

    monkeypatch.setattr(reservation_repository, "_refill_item", unguarded)
    # An expiring grant the workload cannot use up, and one more hold on it that outlives it: its give-back
    # must forfeit, which the unguarded refill does not.
    setup = make_setup(ddb_local_tables, dynamodb_local.endpoint_url, "hard", expiring_amount=100_000)
    ledger = Ledger()
    run_workload(setup, ledger)
    service = setup.harness.service()
    left = setup.harness.entitlements().check(TENANT, "tokens").remaining
    assert left is not None
    last, _ = service.reserve(TENANT, "tokens", left + 100, ttl=timedelta(minutes=10))
    assert (last.grants, len(ledger.errors)) == (((setup.expiring, Decimal(100)),), 0)
    ledger.ids.append(last.reservation_id)
    finish(setup.harness)
    with pytest.raises(AssertionError) as caught:
        check(setup, ledger, final=True)
    print(f"\nunguarded refill caught: {str(caught.value).splitlines()[0]}")
