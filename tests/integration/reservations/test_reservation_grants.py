"""Reservations past an exhausted hard quota draw the tenant's grants (DynamoDB Local, single thread: the
exact bookkeeping; the contended proof is test_reservation_grants_concurrency.py).

A reserve the quota cannot cover takes what the quota has left and the rest from live grants in draw order,
in the transaction that records the reservation (which lists what each grant paid). Settle below the
estimate, cancel and expire refill the grants first, then the quota; an expired or voided grant is not
refilled (its units are forfeited). Settle above the estimate takes the extra from the quota, then grants.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing_platform.audit.log import AuditEntry
from billing_platform.errors import QuotaExceededError
from billing_platform.grants.repository import GrantRepository
from billing_platform.reservations import ReservationState
from tests.factories.grants import add_grant, grants_of
from tests.factories.reservations import Harness, used

pytestmark = [pytest.mark.ddblocal, pytest.mark.xdist_group("ddblocal")]
D = Decimal


@pytest.fixture
def harness(ddb_local_tables: dict[str, str], dynamodb_local: Any) -> Harness:
    return Harness(ddb_local_tables, dynamodb_local.endpoint_url, threads=8)


def grant_repo(harness: Harness) -> GrantRepository:
    return GrantRepository(harness.settings, harness.client)


def drain_to(harness: Harness, tenant: str, left: int) -> None:
    """Use the quota (5000, plan `hard`) until `left` remains."""
    service = harness.service()
    held, _ = service.reserve(tenant, "tokens", D(5000 - left), ttl=timedelta(hours=1))
    service.settle(tenant, held.reservation_id, D(5000 - left))


def test_a_reserve_past_the_quota_draws_grants_and_a_settle_below_refills_them_first(harness: Harness) -> None:
    harness.apply("t1", "hard")
    repo = grant_repo(harness)
    first = add_grant(repo, "t1", "tokens", 100, priority=10)
    second = add_grant(repo, "t1", "tokens", 100, priority=20)
    drain_to(harness, "t1", 30)
    service = harness.service()

    held, _ = service.reserve("t1", "tokens", D(180), ttl=timedelta(minutes=5))
    assert (held.shards, held.grants) == (((0, D(30)),), ((first, D(100)), (second, D(50))))
    assert service.get("t1", held.reservation_id).grants == held.grants  # stored on the item
    grants = grants_of(repo, "t1", "tokens")
    assert (grants[first].remaining, grants[second].remaining) == (D(0), D(50))
    assert used(harness, "t1") == D(5000)

    settled, _ = service.settle("t1", held.reservation_id, D(60))
    # 120 back: the last drawn grant first (50), then the first (70); the quota keeps its 30 + 30 of grant.
    grants = grants_of(repo, "t1", "tokens")
    assert (grants[first].remaining, grants[first].used) == (D(70), D(30))
    assert (grants[second].remaining, grants[second].used) == (D(100), D(0))
    assert used(harness, "t1") == D(5000)
    assert (settled.charged, settled.given_back, settled.forfeited) == (D(60), D(120), D(0))
    assert harness.service().settle("t1", held.reservation_id, D(60))[1]  # a retry replays, changes nothing
    assert grants_of(repo, "t1", "tokens")[first].remaining == D(70)


def test_a_denial_only_when_quota_and_grants_together_are_short(harness: Harness) -> None:
    harness.apply("t2", "hard")
    repo = grant_repo(harness)
    grant = add_grant(repo, "t2", "tokens", 40)
    drain_to(harness, "t2", 10)
    service = harness.service()
    with pytest.raises(QuotaExceededError) as denied:
        service.reserve("t2", "tokens", D(51), ttl=timedelta(minutes=5))
    assert (denied.value.check.remaining, denied.value.check.grant_remaining) == (D(10), D(40))
    assert grants_of(repo, "t2", "tokens")[grant].remaining == D(40)
    held, _ = service.reserve("t2", "tokens", D(50), ttl=timedelta(minutes=5))
    assert (held.shards, held.grants) == (((0, D(10)),), ((grant, D(40)),))


def test_cancel_and_expiry_refill_live_grants_and_forfeit_expired_or_voided_ones(harness: Harness) -> None:
    harness.apply("t3", "hard")
    repo = grant_repo(harness)
    now = harness.clock()
    expiring = add_grant(repo, "t3", "tokens", 100, priority=5, valid_until=now + timedelta(minutes=3))
    voided = add_grant(repo, "t3", "tokens", 100, priority=6)
    lasting = add_grant(repo, "t3", "tokens", 100, priority=7)
    drain_to(harness, "t3", 20)
    service = harness.service()
    a, _ = service.reserve("t3", "tokens", D(120), ttl=timedelta(minutes=10))  # quota 20 + expiring 100
    b, _ = service.reserve("t3", "tokens", D(150), ttl=timedelta(minutes=10))  # voided 100 + lasting 50
    assert a.grants == ((expiring, D(100)),)
    assert b.grants == ((voided, D(100)), (lasting, D(50)))
    to_void = grants_of(repo, "t3", "tokens")[voided]
    audit = AuditEntry(tenant_id="t3", actor="operator:test", action="grant.void", target=voided)
    assert repo.void(to_void, "operator:test", harness.clock(), audit)

    cancelled, _ = service.cancel("t3", b.reservation_id)
    assert (cancelled.given_back, cancelled.forfeited) == (D(50), D(100))
    grants = grants_of(repo, "t3", "tokens")
    assert (grants[lasting].remaining, grants[voided].remaining, grants[voided].used) == (D(100), D(0), D(100))

    harness.clock.advance(timedelta(minutes=12))  # the expiring grant is past its expiry, `a` is due
    assert harness.service().sweep().expired == 1
    expired = service.get("t3", a.reservation_id)
    assert expired.state is ReservationState.EXPIRED
    assert (expired.given_back, expired.forfeited) == (D(20), D(100))
    grants = grants_of(repo, "t3", "tokens")
    assert (grants[expiring].remaining, grants[expiring].used) == (D(0), D(100))  # frozen: not revived
    assert used(harness, "t3") == D(4980)  # the quota's 20 came back, once
    assert harness.service().sweep().expired == 0


def test_settle_above_the_estimate_takes_the_quota_then_grants(harness: Harness) -> None:
    harness.apply("t4", "hard")
    repo = grant_repo(harness)
    grant = add_grant(repo, "t4", "tokens", 100)
    drain_to(harness, "t4", 50)
    service = harness.service()
    held, _ = service.reserve("t4", "tokens", D(30), ttl=timedelta(minutes=5))
    assert held.grants == ()
    settled, _ = service.settle("t4", held.reservation_id, D(100))  # 70 more: quota 20, grant 50
    assert (settled.charged, settled.uncovered, settled.grants) == (D(100), D(0), ((grant, D(50)),))
    assert service.get("t4", held.reservation_id).grants == ((grant, D(50)),)
    assert grants_of(repo, "t4", "tokens")[grant].remaining == D(50)
    assert used(harness, "t4") == D(5000)
    again, _ = service.reserve("t4", "tokens", D(10), ttl=timedelta(minutes=5))
    settled, _ = service.settle("t4", again.reservation_id, D(100))  # 90 more, only 40 left in the grant
    assert (settled.charged, settled.uncovered) == (D(50), D(50))
    assert grants_of(repo, "t4", "tokens")[grant].remaining == D(0)


def test_a_sharded_quota_spends_every_shard_before_grants(harness: Harness) -> None:
    harness.apply("t5", "sharded")  # 4000 over 4 shards
    repo = grant_repo(harness)
    grant = add_grant(repo, "t5", "tokens", 300)
    service = harness.service()
    holds = [service.reserve("t5", "tokens", D(900), ttl=timedelta(minutes=5))[0] for _ in range(4)]
    assert sum(sum(q for _s, q in h.shards) for h in holds) + sum(q for h in holds for _g, q in h.grants) == 3600
    past, _ = service.reserve("t5", "tokens", D(500), ttl=timedelta(minutes=5))
    assert (sum(q for _s, q in past.shards), past.grants) == (D(400), ((grant, D(100)),))
    with pytest.raises(QuotaExceededError):
        service.reserve("t5", "tokens", D(201), ttl=timedelta(minutes=5))
    service.cancel("t5", past.reservation_id)
    assert grants_of(repo, "t5", "tokens")[grant].remaining == D(300)
    assert used(harness, "t5") == D(3600)
