"""Proof on Amazon's DynamoDB Local (moto is not atomic under threads): 36 threads reserve against one hard
quota and settle (below, at and above the estimate), cancel, race a settle against a cancel, or abandon
their reservations, with crashes injected between reserve and settle and between settle's steps (before
its transaction, after its commit, after its usage record was sent), while a sweeper expires what is due
and the test clock finally moves past every expiry. At the end:

- `used` equals the charged amounts of settled reservations plus the live holds, and never exceeds the
  limit (checked with live holds, and again once everything has expired);
- every abandoned reservation was given back exactly once (expired, its whole estimate given back);
- the metered total (raw records written by the real usage consumer) equals the settled total, one record
  per settled reservation under the id derived from it.

The mutation check runs the same workload with the give-back guard weakened (the `state = held` condition
of the transition made always true) and requires the invariants to fail.
"""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing_platform.errors import ConflictError, QuotaExceededError
from billing_platform.reservations import Reservation, ReservationService, ReservationState
from billing_platform.reservations.meter import QueueMeter
from billing_platform.reservations.models import usage_record_id
from billing_platform.reservations.repository import ReservationRepository
from tests.factories.reservations import Harness, Ledger, run_beside_sweeper, used

pytestmark = [pytest.mark.ddblocal, pytest.mark.xdist_group("ddblocal")]

THREADS = 36
ROUNDS = 10
TENANT = "race"
LIMIT = Decimal(15000)  # the "contended" plan: runs out about two thirds of the way through
FATES = ("below", "at", "above", "cancel", "race", "abandon", "crash_before", "crash_after_commit", "crash_after_send")


class Crash(BaseException):
    """A process dying at this point (not an Exception: no handler in the code under test may catch it)."""


_faults = threading.local()


def inject(point: str | None) -> None:
    _faults.point = point


def _maybe_crash(point: str) -> None:
    if getattr(_faults, "point", None) == point:
        _faults.point = None
        raise Crash(point)


class CrashingRepository(ReservationRepository):
    def get(self, tenant_id: str, reservation_id: str) -> Reservation | None:
        _maybe_crash("on_load")  # the settle's first step: the process dies before it changes anything
        return super().get(tenant_id, reservation_id)

    def mark_metered(self, reservation: Reservation) -> None:
        _maybe_crash("after_send")
        super().mark_metered(reservation)


class CrashingMeter(QueueMeter):
    def send(self, reservation: Reservation) -> None:
        _maybe_crash("before_send")
        super().send(reservation)


def run_workload(harness: Harness, ledger: Ledger) -> list[ReservationService]:
    services = [
        harness.service(
            seed=i,
            repository=CrashingRepository(harness.settings, harness.client),
            meter=CrashingMeter(harness.settings, harness.catalog, sender=harness.sender),
        )
        for i in range(THREADS)
    ]
    start = threading.Barrier(THREADS + 1)
    racer_pool = ThreadPoolExecutor(max_workers=THREADS)

    def settle_or_refused(service: ReservationService, rid: str, actual: Decimal) -> None:
        try:
            service.settle(TENANT, rid, actual)
        except ConflictError:
            ledger.note(refused_409=1)

    def worker(index: int) -> None:
        rng = random.Random(index)
        service = services[index]
        start.wait()
        for _ in range(ROUNDS):
            estimate = Decimal(rng.randrange(20, 200))
            # Short TTLs expire during the run, so the sweeper races settles; long ones stay live holds.
            ttl = timedelta(seconds=rng.choice([2, 3, 5, 2, 3, 5, 600]))
            try:
                held, _ = service.reserve(TENANT, "tokens", estimate, ttl=ttl)
            except QuotaExceededError:
                ledger.note(denied=1)
                continue
            fate = rng.choice(FATES)
            with ledger.lock:
                ledger.reserved += 1
                ledger.ids.append(held.reservation_id)
                ledger.fates[fate] = ledger.fates.get(fate, 0) + 1
                if fate in ("abandon", "crash_before"):
                    ledger.abandoned.add(held.reservation_id)
            rid = held.reservation_id
            actual = {
                "below": estimate - Decimal(rng.randrange(1, int(estimate))),
                "at": estimate,
                "above": estimate + Decimal(rng.randrange(1, 300)),
            }.get(fate, Decimal(rng.randrange(0, 500)))
            try:
                if fate in ("below", "at", "above"):
                    settle_or_refused(service, rid, actual)
                elif fate == "cancel":
                    try:
                        service.cancel(TENANT, rid)
                    except ConflictError:  # expired first
                        ledger.note(refused_409=1)
                elif fate == "race":
                    # A settle and a cancel of the same reservation at the same moment (two containers).
                    pair = threading.Barrier(2)

                    def cancel_now(rid: str = rid, pair: threading.Barrier = pair) -> None:
                        pair.wait()
                        try:
                            services[(index + 1) % THREADS].cancel(TENANT, rid)
                        except ConflictError:
                            ledger.note(refused_409=1)

                    other = racer_pool.submit(cancel_now)
                    pair.wait()
                    settle_or_refused(service, rid, actual)
                    other.result()
                elif fate == "crash_before":
                    inject("on_load")  # the settle dies before its transaction and is never retried
                    service.settle(TENANT, rid, actual)
                elif fate in ("crash_after_commit", "crash_after_send"):
                    # Committed, then dead before the usage record went out / before noting it went out.
                    inject("before_send" if fate == "crash_after_commit" else "after_send")
                    try:
                        service.settle(TENANT, rid, actual)
                    except Crash:
                        ledger.note(crashes=1)
                        if rng.random() < 0.5:  # the client retries the settle it never got an answer for
                            settle_or_refused(service, rid, actual)
            except Crash:
                ledger.note(crashes=1)
            except ConflictError:  # expired before the settle came (the sweeper or the settle gave it back)
                ledger.note(refused_409=1)
            except BaseException as exc:
                ledger.errors.append(exc)
            finally:
                inject(None)

    run_beside_sweeper(harness, worker, THREADS, start)
    racer_pool.shutdown()
    return services


def reservations(harness: Harness, ledger: Ledger) -> list[Reservation]:
    service = harness.service()
    return [service.get(TENANT, rid) for rid in ledger.ids]


def check_live(harness: Harness, ledger: Ledger) -> dict[str, Decimal]:
    found = reservations(harness, ledger)
    charged = sum((r.charged for r in found if r.state is ReservationState.SETTLED), Decimal(0))
    holds = sum((r.estimate for r in found if r.state is ReservationState.HELD), Decimal(0))
    now_used = used(harness, TENANT)
    assert now_used == charged + holds, f"used {now_used} != settled {charged} + live holds {holds}"
    assert now_used <= LIMIT
    return {"used": now_used, "settled": charged, "live_holds": holds}


def check_final(harness: Harness, ledger: Ledger) -> dict[str, Decimal | int]:
    found = reservations(harness, ledger)
    settled = [r for r in found if r.state is ReservationState.SETTLED]
    charged = sum((r.charged for r in settled), Decimal(0))
    final_used = used(harness, TENANT)
    assert not [r for r in found if r.state is ReservationState.HELD], "a reservation is still held"
    assert final_used == charged, f"used {final_used} != settled total {charged}"
    assert final_used <= LIMIT
    for r in found:
        if r.state in (ReservationState.EXPIRED, ReservationState.CANCELLED):
            assert (r.given_back, r.charged) == (r.estimate, 0), r
        else:
            assert r.charged + r.given_back == max(r.estimate, r.charged), r
    abandoned = [r for r in found if r.reservation_id in ledger.abandoned]
    assert all(r.state is ReservationState.EXPIRED for r in abandoned)
    metered = harness.metered(TENANT)
    expected = {usage_record_id(r.reservation_id): r.charged for r in settled if r.charged > 0}
    assert metered == expected
    assert sum(metered.values(), Decimal(0)) == charged
    return {
        "reservations": len(found),
        "settled": len(settled),
        "expired": sum(1 for r in found if r.state is ReservationState.EXPIRED),
        "cancelled": sum(1 for r in found if r.state is ReservationState.CANCELLED),
        "abandoned_given_back": len(abandoned),
        "used": final_used,
        "settled_total": charged,
        "metered_total": sum(metered.values(), Decimal(0)),
        "uncovered_total": sum((r.uncovered for r in settled), Decimal(0)),
    }


def finish(harness: Harness) -> None:
    """Past every expiry and the meter retry delay; sweep until nothing is left to do."""
    harness.clock.advance(timedelta(minutes=15))
    sweeper = harness.service(seed=1000)
    while True:
        report = sweeper.sweep()
        if not (report.expired or report.metered):
            break


@pytest.fixture
def harness(ddb_local_tables: dict[str, str], dynamodb_local: Any) -> Harness:
    built = Harness(ddb_local_tables, dynamodb_local.endpoint_url, threads=2 * THREADS + 8)
    built.apply(TENANT, "contended")
    return built


def test_reservations_are_exact_under_contention_crashes_and_expiry(harness: Harness) -> None:
    ledger = Ledger()
    run_workload(harness, ledger)
    assert not ledger.errors, ledger.errors[:3]
    live = check_live(harness, ledger)
    finish(harness)
    final = check_final(harness, ledger)
    print(
        f"\nreservations: {ledger.reserved} reserved, {ledger.denied} denied (402), {ledger.refused_409} refused 409, "
        f"{ledger.crashes} crashes; fates {ledger.fates}\nlive: {live}\nfinal: {final}"
    )
    assert ledger.reserved >= THREADS * ROUNDS // 3
    assert ledger.denied > 0  # the hard quota was really contended
    assert ledger.crashes > 0
    assert live["live_holds"] > 0


def test_mutation_weakened_give_back_guard_is_caught(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    original = ReservationRepository.transition_item

    def weakened(self: ReservationRepository, before: Reservation, after: Reservation, now: datetime) -> dict[str, Any]:
        item = original(self, before, after, now)
        # The guard `state = held` made always true: any state may be resolved (again).
        item["Update"]["ConditionExpression"] = "#st = :held OR #st <> :held"
        return item

    monkeypatch.setattr(ReservationRepository, "transition_item", weakened)
    ledger = Ledger()
    run_workload(harness, ledger)
    finish(harness)
    with pytest.raises(AssertionError) as caught:
        check_all(harness, ledger)
    print(f"\nweakened guard caught: {str(caught.value).splitlines()[0]}")


def check_all(harness: Harness, ledger: Ledger) -> None:
    check_live(harness, ledger)
    check_final(harness, ledger)
