"""The take naming an entity, on DynamoDB Local: counted at every limited level or nowhere, refused naming
the level (402 for a period, a window's end for a window), exactly once with an idempotency key, given back
at every level; a consume naming no entity stays one UpdateItem."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing_platform.entitlements.models import DenyReason
from billing_platform.errors import UnprocessableError
from tests.factories.entities import KEY, Org

pytestmark = [pytest.mark.ddblocal, pytest.mark.xdist_group("ddblocal")]
D = Decimal


@pytest.fixture
def org(ddb_local_tables: dict[str, str], dynamodb_local: Any) -> Org:
    org = Org(ddb_local_tables, dynamodb_local.endpoint_url)
    org.apply()
    org.build()
    return org


def used_everywhere(org: Org) -> dict[str, Decimal]:
    found = {"tenant": org.tenant_used()[0]}
    for entity in ("team-a", "u0", KEY, "team-b", "u4"):
        found[entity] = org.entity_used(entity)[0]
    return found


def test_a_take_counts_at_every_limited_level_of_the_chain(org: Org) -> None:
    svc = org.entitlements()
    answer = svc.consume(org.tenant_id, "tokens", D(7), entity_id=KEY)
    assert answer.allowed
    assert answer.entity_id == KEY
    assert used_everywhere(org) == {"tenant": 7, "team-a": 7, "u0": 7, KEY: 7, "team-b": 0, "u4": 0}


def test_the_nearest_short_level_refuses_and_nothing_is_counted_anywhere(org: Org) -> None:
    svc = org.entitlements()
    assert svc.consume(org.tenant_id, "tokens", D(140), entity_id=KEY).allowed
    before = used_everywhere(org)
    denied = svc.consume(org.tenant_id, "tokens", D(20), entity_id=KEY)
    assert not denied.allowed
    assert (denied.reason, denied.refused_by) == (DenyReason.EXHAUSTED, f"entity:{KEY}")
    levels = {(s.level, s.window): s for s in denied.levels}
    assert levels[(f"entity:{KEY}", None)].remaining == 10
    assert levels[("entity:u0", None)].remaining == 460
    assert levels[("tenant", None)].remaining == 3860
    assert used_everywhere(org) == before
    # The user itself still has room: a take at u0 (not through the key) passes.
    assert svc.consume(org.tenant_id, "tokens", D(20), entity_id="u0").allowed


def test_a_team_and_the_tenant_refuse_when_they_are_the_short_level(org: Org) -> None:
    svc = org.entitlements()
    for user in ("u0", "u1", "u2"):
        assert svc.consume(org.tenant_id, "tokens", D(600), entity_id=user).allowed
    team = svc.consume(org.tenant_id, "tokens", D(1), entity_id="u3")
    assert (team.allowed, team.refused_by) == (False, "entity:team-a")
    for user in ("u4", "u5"):
        assert svc.consume(org.tenant_id, "tokens", D(200), entity_id=user).allowed
    # The tenant: 4000 - 1800 - 400 = 1800 left; take it without any entity, then u6 is refused there.
    assert svc.consume(org.tenant_id, "tokens", D(1800)).allowed
    tenant = svc.consume(org.tenant_id, "tokens", D(1), entity_id="u6")
    assert (tenant.allowed, tenant.refused_by) == (False, "tenant")


def test_a_window_refuses_with_its_end_and_rolls_over(org: Org) -> None:
    svc = org.entitlements()
    for user in ("u4", "u5"):
        assert svc.consume(org.tenant_id, "tokens", D(200), entity_id=user).allowed
    denied = svc.consume(org.tenant_id, "tokens", D(1), entity_id="u6")
    assert (denied.allowed, denied.reason, denied.refused_by) == (False, DenyReason.WINDOW, "entity:team-b")
    assert denied.retry_after_seconds is not None
    assert 1 <= denied.retry_after_seconds <= 60
    window = next(s for s in denied.levels if s.window == "minute")
    assert (window.used, window.remaining) == (400, 0)
    org.clock.advance(timedelta(seconds=denied.retry_after_seconds))
    assert svc.consume(org.tenant_id, "tokens", D(1), entity_id="u6").allowed
    assert org.entity_used("team-b")[0] == 401


def test_an_idempotent_take_counts_once_and_its_release_gives_back_at_every_level(org: Org) -> None:
    svc = org.entitlements()
    first = svc.consume(org.tenant_id, "tokens", D(9), entity_id=KEY, idempotency_key="job-1")
    again = org.entitlements(seed=8).consume(org.tenant_id, "tokens", D(9), entity_id=KEY, idempotency_key="job-1")
    assert first.allowed
    assert again.allowed
    assert again.replayed
    assert used_everywhere(org)[KEY] == 9
    released = svc.release(org.tenant_id, "tokens", idempotency_key="job-1", entity_id=KEY)
    assert released.quantity == 9
    twice = svc.release(org.tenant_id, "tokens", idempotency_key="job-1", entity_id=KEY)
    assert (twice.quantity, twice.replayed) == (0, True)
    assert set(used_everywhere(org).values()) == {0}


def test_a_release_without_a_key_gives_back_what_every_level_used(org: Org) -> None:
    svc = org.entitlements()
    assert svc.consume(org.tenant_id, "tokens", D(30), entity_id="u1").allowed
    given = svc.release(org.tenant_id, "tokens", D(50), entity_id="u1")
    assert given.quantity == 30
    assert used_everywhere(org)["team-a"] == 0


def test_check_reads_every_level_and_writes_nothing(org: Org) -> None:
    svc = org.entitlements()
    assert svc.consume(org.tenant_id, "tokens", D(145), entity_id=KEY).allowed
    before = used_everywhere(org)
    assert svc.check(org.tenant_id, "tokens", D(5), entity_id=KEY).allowed
    refused = svc.check(org.tenant_id, "tokens", D(6), entity_id=KEY)
    assert (refused.allowed, refused.refused_by) == (False, f"entity:{KEY}")
    assert used_everywhere(org) == before


def test_an_unknown_entity_is_refused_before_anything_is_written(org: Org) -> None:
    with pytest.raises(UnprocessableError) as refused:
        org.entitlements().consume(org.tenant_id, "tokens", D(1), entity_id="nobody")
    assert refused.value.code == "unknown_entity"
    assert org.tenant_used()[0] == 0


@pytest.fixture
def requests(org: Org) -> Iterator[list[str]]:
    """The DynamoDB operations the org's client sends while the test runs."""
    sent: list[str] = []

    def note(**kwargs: Any) -> None:
        sent.append(kwargs["model"].name)

    org.client.meta.events.register("before-call.dynamodb", note)
    yield sent
    org.client.meta.events.unregister("before-call.dynamodb", note)


def test_a_take_naming_no_entity_stays_one_update_and_an_entity_take_one_transaction(
    org: Org, requests: list[str]
) -> None:
    svc = org.entitlements()
    svc.consume(org.tenant_id, "tokens", D(1))  # warms the container's layout cache
    svc.consume(org.tenant_id, "tokens", D(1), entity_id=KEY)  # warms the chain cache
    requests.clear()
    svc.consume(org.tenant_id, "tokens", D(1))
    assert requests == ["UpdateItem"]
    requests.clear()
    svc.consume(org.tenant_id, "tokens", D(1), entity_id=KEY)
    assert requests == ["TransactWriteItems"]


def test_a_reservation_holds_at_every_level_and_settles_above_and_below_there(org: Org) -> None:
    reservations = org.reservations()
    below, _ = reservations.reserve(org.tenant_id, "tokens", D(40), entity_id=KEY)
    assert below.entities == (KEY, "u0", "team-a")
    assert used_everywhere(org)[KEY] == 40
    reservations.settle(org.tenant_id, below.reservation_id, D(25))
    assert used_everywhere(org) == {"tenant": 25, "team-a": 25, "u0": 25, KEY: 25, "team-b": 0, "u4": 0}
    above, _ = reservations.reserve(org.tenant_id, "tokens", D(10), entity_id=KEY)
    settled, _ = reservations.settle(org.tenant_id, above.reservation_id, D(30))
    assert (settled.charged, settled.uncovered) == (30, 0)
    assert used_everywhere(org)[KEY] == 55
    # Past the key's budget (150): a settle takes only what the key has left and reports the rest uncovered.
    big, _ = reservations.reserve(org.tenant_id, "tokens", D(90), entity_id=KEY)
    capped, _ = reservations.settle(org.tenant_id, big.reservation_id, D(100))
    assert (capped.charged, capped.uncovered) == (95, 5)
    assert used_everywhere(org)[KEY] == 150
    cancelled, _ = reservations.reserve(org.tenant_id, "tokens", D(5), entity_id="u0")
    reservations.cancel(org.tenant_id, cancelled.reservation_id)
    assert used_everywhere(org) == {"tenant": 150, "team-a": 150, "u0": 150, KEY: 150, "team-b": 0, "u4": 0}
    with pytest.raises(Exception, match="quota is exhausted") as refused:
        reservations.reserve(org.tenant_id, "tokens", D(1), entity_id=KEY)
    assert refused.value.check.refused_by == f"entity:{KEY}"  # type: ignore[attr-defined]
