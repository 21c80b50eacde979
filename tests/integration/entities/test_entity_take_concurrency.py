"""Proof on DynamoDB Local (moto is not atomic under threads): 32 threads, each its own container, take
tokens for 8 users in 2 teams, a key under a user, and the tenant itself, with limits at every level (hard),
a key budget, a per-minute window on one team and one on the plan itself; with idempotency keys and client
retries, releases with and without keys, reservations settled above and below their estimate, and the
clock moving a minute mid-run so every window rolls over. At the end every level's `used` equals what the
answers say it granted minus what they gave back, no level is above its limit (no window above its limit
in any minute), and every refusal is justified by the level it names. The same run with one level's
condition dropped fails."""

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

from billing_platform.entities.models import TENANT_LEVEL, level_name
from billing_platform.entitlements import entity_take
from billing_platform.entitlements.models import DenyReason, EntitlementCheck
from billing_platform.entitlements.repository import counter_key
from billing_platform.entitlements.service import EntitlementService
from billing_platform.errors import QuotaExceededError
from billing_platform.reservations.service import ReservationService
from tests.factories.entities import KEY, TEAMS, Org, OrgLimits, chain_of

pytestmark = [pytest.mark.ddblocal, pytest.mark.xdist_group("ddblocal")]
THREADS = 32
OPS_PER_THREAD = 40
PLAN_MINUTE = Decimal(2400)  # the plan's own window ("org-windowed")
ENTITIES = [u for users in TEAMS.values() for u in users] + [KEY]
ZERO = Decimal(0)
# Limits sized so every level binds during the run: team-a below its users' sum, the tenant below what the
# teams and the tenant-wide traffic ask for, the key below its user's, team-b's minute below its demand.
LIMITS = OrgLimits(team_a=Decimal(1200), user=Decimal(400))


@dataclass
class Ledger:
    """What the answers say, per level: granted and given back; refusals with what they named."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    counted: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    gross: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))  # granted, before give-backs
    keyed: dict[str, tuple[str | None, Decimal, bool]] = field(default_factory=dict)  # key -> entity, q, allowed
    refusals: list[tuple[str | None, Decimal, EntitlementCheck, bool]] = field(default_factory=list)
    releases_done: int = 0
    jumps: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    first_minute: int = 0
    last_minute: int = 0

    def add(self, entity: str | None, quantity: Decimal, sign: int, *, taken: Decimal | None = None) -> None:
        """Count `quantity` (net) at every level of the entity's chain; `taken` is what its windows counted
        (a reservation: the estimate plus any extra taken at settle, never its give-backs)."""
        with self.lock:
            for level in [TENANT_LEVEL, *(level_name(e) for e in (chain_of(entity) if entity else []))]:
                self.counted[level] += sign * quantity
                if sign > 0:
                    self.gross[level] += quantity if taken is None else taken

    def moments(self) -> tuple[int, int]:
        with self.lock:
            return self.releases_done, self.jumps


def worker(org: Org, ledger: Ledger, index: int, start: threading.Barrier, halfway: threading.Event) -> None:
    rng = random.Random(index)
    svc: EntitlementService = org.entitlements(seed=index)  # one container per thread
    holds = org.reservations(seed=index)
    mine: list[tuple[str, str | None]] = []
    start.wait()
    for op in range(OPS_PER_THREAD):
        if index == 0 and op == OPS_PER_THREAD // 2:
            halfway.set()
        entity = None if rng.random() < 0.35 else rng.choice(ENTITIES)
        quantity = Decimal(rng.randint(1, 12))
        roll = rng.random()
        if roll < 0.08 and mine:
            key, owner = mine.pop(rng.randrange(len(mine)))
            answer = svc.release(org.tenant_id, "tokens", idempotency_key=key, entity_id=owner)
            _released(ledger, owner, answer)
            continue
        if roll < 0.12:
            answer = svc.release(org.tenant_id, "tokens", quantity, entity_id=entity)
            _released(ledger, entity, answer)
            continue
        before = ledger.moments()
        if roll < 0.24:
            _reserve_and_settle(org, holds, ledger, rng, entity, quantity, index, op)
            continue
        if roll < 0.55:
            key = f"job-{index}-{op}"
            answer = svc.consume(org.tenant_id, "tokens", quantity, entity_id=entity, idempotency_key=key)
            if rng.random() < 0.3:  # the client retries (another container may take it)
                retry = org.entitlements(seed=1000 + index).consume(
                    org.tenant_id, "tokens", quantity, entity_id=entity, idempotency_key=key
                )
                assert (retry.allowed, retry.replayed) == (answer.allowed, True)
            with ledger.lock:
                ledger.keyed[key] = (entity, quantity, answer.allowed)
            if answer.allowed:
                mine.append((key, entity))
        else:
            answer = svc.consume(org.tenant_id, "tokens", quantity, entity_id=entity)
        if answer.allowed:
            ledger.add(entity, quantity, +1)
            ledger.outcomes["granted"] += 1
        else:
            with ledger.lock:
                ledger.refusals.append((entity, quantity, answer, before == ledger.moments()))
                ledger.outcomes[f"refused:{answer.refused_by or TENANT_LEVEL}:{answer.reason}"] += 1


def _reserve_and_settle(
    org: Org,
    holds: ReservationService,
    ledger: Ledger,
    rng: random.Random,
    entity: str | None,
    estimate: Decimal,
    index: int,
    op: int,
) -> None:
    """Hold an estimate (keyed half the time), then settle it above or below."""
    before = ledger.moments()
    key = f"hold-{index}-{op}" if rng.random() < 0.5 else None
    try:
        held, _ = holds.reserve(org.tenant_id, "tokens", estimate, entity_id=entity, idempotency_key=key)
    except QuotaExceededError as refused:
        with ledger.lock:
            ledger.refusals.append((entity, estimate, refused.check, before == ledger.moments()))
            ledger.outcomes[f"refused:{refused.check.refused_by or TENANT_LEVEL}:{refused.check.reason}"] += 1
        return
    actual = max(Decimal(1), estimate + rng.choice([-4, -2, -1, 1, 2, 6]))
    settled, _ = holds.settle(org.tenant_id, held.reservation_id, actual)
    taken = estimate + max(ZERO, settled.charged - estimate)
    ledger.add(entity, settled.charged, +1, taken=taken)
    with ledger.lock:
        ledger.outcomes["settled_above" if actual > estimate else "settled_below"] += 1
        if settled.uncovered > 0:
            ledger.outcomes["settled_uncovered"] += 1
        if settled.charged < estimate:
            ledger.releases_done += 1  # a give-back: later refusals may have seen more room


def _released(ledger: Ledger, entity: str | None, answer: EntitlementCheck) -> None:
    if answer.quantity > 0:
        ledger.add(entity, answer.quantity, -1)
        with ledger.lock:
            ledger.releases_done += 1
            ledger.outcomes["released"] += 1


def run(org: Org) -> Ledger:
    ledger = Ledger()
    ledger.first_minute = int(org.clock().timestamp()) // 60
    start = threading.Barrier(THREADS + 1)
    halfway = threading.Event()

    def jumper() -> None:
        start.wait()
        halfway.wait(timeout=120)
        org.clock.advance(timedelta(seconds=60))  # every minute window rolls over mid-run
        with ledger.lock:
            ledger.jumps += 1

    with ThreadPoolExecutor(max_workers=THREADS + 1) as pool:
        futures = [pool.submit(worker, org, ledger, i, start, halfway) for i in range(THREADS)]
        futures.append(pool.submit(jumper))
        for future in futures:
            future.result()
    ledger.last_minute = int(org.clock().timestamp()) // 60
    return ledger


def verify(org: Org, ledger: Ledger, limits: OrgLimits) -> dict[str, Any]:
    """The proof's assertions; returns the numbers for the report."""
    actual = {TENANT_LEVEL: org.tenant_used()}
    for entity in [*TEAMS, *ENTITIES]:
        actual[level_name(entity)] = org.entity_used(entity)
    for level, (used, limit) in actual.items():
        assert used == ledger.counted[level], f"{level}: used {used} but the answers granted {ledger.counted[level]}"
        assert used <= limit, f"{level}: used {used} above its limit {limit}"
    window = org.item(entity_take.limit_key(org.tenant_id, "team-b", "tokens"))
    assert Decimal(window["w_minute_used"]["N"]) <= limits.team_b_minute
    plan_window = org.item(counter_key(org.tenant_id, "tokens"))
    assert Decimal(plan_window["w_minute_used"]["N"]) <= PLAN_MINUTE
    # The run spans a few minute windows (real time passes too, besides the jump): team-b and the plan never
    # took more than their minute limit in each.
    minutes = ledger.last_minute - ledger.first_minute + 1
    assert ledger.gross["entity:team-b"] <= limits.team_b_minute * minutes, (ledger.gross["entity:team-b"], minutes)
    assert ledger.gross[TENANT_LEVEL] <= PLAN_MINUTE * minutes, (ledger.gross[TENANT_LEVEL], minutes)
    strict = 0
    for entity, quantity, answer, quiet in ledger.refusals:
        chain = [TENANT_LEVEL, *(level_name(e) for e in (chain_of(entity) if entity else []))]
        refused_by = answer.refused_by or TENANT_LEVEL  # a take naming no entity answers as today
        assert refused_by in chain, (entity, answer.refused_by)
        named = [s for s in answer.levels if s.level == refused_by]
        if answer.reason is DenyReason.WINDOW:
            row = next(s for s in named if s.window == "minute")
            assert answer.retry_after_seconds is not None
            assert 1 <= answer.retry_after_seconds <= 60
            short = row.remaining is not None and row.remaining < quantity
        else:
            assert answer.reason is DenyReason.EXHAUSTED, answer.reason
            periods = [s for s in named if s.window is None]
            row = periods[0] if periods else None
            short = (
                answer.remaining is not None and answer.remaining < quantity
                if row is None
                else (row.remaining is not None and row.remaining < quantity)
            )
        if quiet:  # no release and no window rollover between the refusal and its read: it must show
            assert short, (entity, quantity, refused_by, answer.levels)
            strict += 1
    return {
        "levels": {k: (str(u), str(limit)) for k, (u, limit) in actual.items()},
        "strict_refusals": strict,
        "team_b_taken": str(ledger.gross["entity:team-b"]),
        "tenant_taken": str(ledger.gross[TENANT_LEVEL]),
        "minute_windows": minutes,
    }


@pytest.fixture
def org(ddb_local_tables: dict[str, str], dynamodb_local: Any) -> Org:
    org = Org(ddb_local_tables, dynamodb_local.endpoint_url, threads=THREADS * 3 + 4)
    org.apply("org-windowed")
    org.build(LIMITS)
    return org


def test_every_level_counts_exactly_what_it_granted_under_contention(org: Org) -> None:
    ledger = run(org)
    report = verify(org, ledger, LIMITS)
    refused_by = {
        outcome.split(":", 2)[1] + ":" + outcome.split(":", 2)[2]
        for outcome in ledger.outcomes
        if outcome.startswith("refused")
    }
    # Every kind of level refused at least once: the run exercised each condition.
    for level in (TENANT_LEVEL, "entity:team-a", f"entity:{KEY}"):
        assert any(r.startswith(level + ":") for r in refused_by), (level, ledger.outcomes)
    assert any(r.endswith(DenyReason.WINDOW.value) for r in refused_by), ledger.outcomes
    assert ledger.outcomes["settled_above"] > 0
    assert ledger.outcomes["settled_below"] > 0
    assert report["strict_refusals"] > 0
    print("\nentity take proof:", dict(ledger.outcomes), report)


def test_dropping_one_levels_condition_makes_the_proof_fail(org: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    original: Callable[..., dict[str, Any]] = entity_take.entity_item

    def without_team_condition(table: str, key: dict[str, Any], quantity: Decimal, now: Any, **kwargs: Any) -> Any:
        if key["pk"]["S"].endswith("#team-a"):
            kwargs["enforce"] = False  # the mutation: team-a's `remaining >= q` is gone
        return original(table, key, quantity, now, **kwargs)

    monkeypatch.setattr(entity_take, "entity_item", without_team_condition)
    ledger = run(org)
    with pytest.raises(AssertionError, match="team-a"):
        verify(org, ledger, LIMITS)
