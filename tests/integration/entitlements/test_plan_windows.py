"""A plan's short windows on DynamoDB Local: checked and counted in the same write as the period quota on
every take (hot path, keyed, reservation and its settle, naming an entity, a grant draw), refused 429 with
the window's end, started anew when the window rolls over, brought to new terms by a plan change. And a take
naming an entity draws the tenant's grants when the plan quota alone is short."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from billing_platform.catalog.models import parse_catalog
from billing_platform.entitlements.models import DenyReason
from billing_platform.entitlements.repository import counter_key
from billing_platform.errors import QuotaExceededError
from tests.factories.entities import CATALOG, Org

pytestmark = [pytest.mark.ddblocal, pytest.mark.xdist_group("ddblocal")]
D = Decimal


@pytest.fixture
def org(ddb_local_tables: dict[str, str], dynamodb_local: Any) -> Org:
    org = Org(ddb_local_tables, dynamodb_local.endpoint_url)
    # Start each test just after a minute boundary (real time runs on; the test has ~58 s in one window).
    org.clock.advance(timedelta(seconds=61 - datetime.now(UTC).second))
    return org


def window_used(org: Org) -> Decimal:
    return D(org.item(counter_key(org.tenant_id, "tokens"))["w_minute_used"]["N"])


def test_the_hot_path_counts_the_window_and_refuses_past_it_with_its_end(org: Org) -> None:
    org.apply("windowed")
    svc = org.entitlements()
    assert svc.consume(org.tenant_id, "tokens", D(200)).allowed
    assert svc.consume(org.tenant_id, "tokens", D(100)).allowed
    denied = svc.consume(org.tenant_id, "tokens", D(1))
    assert (denied.allowed, denied.reason, denied.refused_by) == (False, DenyReason.WINDOW, "tenant")
    end = (int(org.clock().timestamp()) // 60 + 1) * 60
    assert 1 <= (denied.retry_after_seconds or 0) <= end - int(org.clock().timestamp()) + 1
    assert denied.remaining == 3700  # the period quota has room: a rate, not an exhausted quota
    (row,) = [s for s in denied.levels if s.window == "minute"]
    assert (row.limit, row.used, row.remaining) == (300, 300, 0)
    with pytest.raises(QuotaExceededError) as raised:
        raise QuotaExceededError(denied)
    assert raised.value.http_status == 429
    assert org.tenant_used()[0] == 300
    asked = svc.check(org.tenant_id, "tokens", D(1))  # the question answers as the consume would
    assert (asked.allowed, asked.reason) == (False, DenyReason.WINDOW)
    assert asked.retry_after_seconds is not None
    # The window rolls over: the next take starts a new one (one conditional write) and counts there.
    org.clock.advance(timedelta(seconds=60))
    assert svc.consume(org.tenant_id, "tokens", D(50)).allowed
    assert window_used(org) == 50
    assert org.tenant_used()[0] == 350


def test_a_cold_container_learns_the_marker_and_a_keyed_consume_counts_the_window_once(org: Org) -> None:
    org.apply("windowed")
    assert org.entitlements(seed=1).consume(org.tenant_id, "tokens", D(100)).allowed
    cold = org.entitlements(seed=2)  # its own caches: no marker seen yet
    first = cold.consume(org.tenant_id, "tokens", D(100), idempotency_key="k-1")
    again = org.entitlements(seed=3).consume(org.tenant_id, "tokens", D(100), idempotency_key="k-1")
    assert first.allowed
    assert again.allowed
    assert again.replayed
    assert window_used(org) == 200
    assert org.tenant_used()[0] == 200


def test_reservations_hold_in_the_window_and_a_settle_above_takes_the_extra_there(org: Org) -> None:
    org.apply("windowed")
    reservations = org.reservations()
    held, _ = reservations.reserve(org.tenant_id, "tokens", D(150))
    assert window_used(org) == 150
    settled, _ = reservations.settle(org.tenant_id, held.reservation_id, D(180))
    assert settled.charged == 180
    assert window_used(org) == 180
    below, _ = reservations.reserve(org.tenant_id, "tokens", D(100))
    reservations.settle(org.tenant_id, below.reservation_id, D(40))
    # Give-backs go to the period, never to a window: the window counted what was taken.
    assert window_used(org) == 280
    assert org.tenant_used()[0] == 220
    # A settle whose extra the window cannot cover charges the estimate and reports the extra uncovered.
    third, _ = reservations.reserve(org.tenant_id, "tokens", D(10))
    over, _ = reservations.settle(org.tenant_id, third.reservation_id, D(40))
    assert (over.charged, over.uncovered) == (D(10), D(30))
    assert window_used(org) == 290
    with pytest.raises(QuotaExceededError) as raised:
        reservations.reserve(org.tenant_id, "tokens", D(11))
    assert raised.value.http_status == 429


def test_a_plan_change_brings_the_live_window_to_its_new_limit_keeping_what_it_used(org: Org) -> None:
    org.apply("windowed")
    svc = org.entitlements()
    assert svc.consume(org.tenant_id, "tokens", D(300)).allowed
    assert not svc.consume(org.tenant_id, "tokens", D(1)).allowed
    org.apply("windowed-wide")
    item = org.item(counter_key(org.tenant_id, "tokens"))
    assert (item["windows"]["S"], D(item["w_minute_rem"]["N"]), D(item["w_minute_used"]["N"])) == (
        "minute=500",
        200,
        300,
    )
    assert svc.consume(org.tenant_id, "tokens", D(200)).allowed  # this container's marker was outdated
    assert not svc.consume(org.tenant_id, "tokens", D(1)).allowed
    org.apply("org")  # no window any more
    assert "windows" not in org.item(counter_key(org.tenant_id, "tokens"))
    assert svc.consume(org.tenant_id, "tokens", D(1000)).allowed


def test_a_take_naming_an_entity_counts_the_plan_window_and_is_refused_there(org: Org) -> None:
    org.apply("windowed")
    org.build()
    svc = org.entitlements()
    assert svc.consume(org.tenant_id, "tokens", D(250), entity_id="u0").allowed
    assert svc.consume(org.tenant_id, "tokens", D(50)).allowed
    denied = svc.consume(org.tenant_id, "tokens", D(10), entity_id="u1")
    assert (denied.allowed, denied.reason, denied.refused_by) == (False, DenyReason.WINDOW, "tenant")
    assert denied.retry_after_seconds is not None
    assert org.entity_used("u1")[0] == 0
    assert window_used(org) == 300


def test_a_take_naming_an_entity_draws_grants_when_the_plan_quota_is_short(org: Org) -> None:
    org.apply()
    org.build()
    svc = org.entitlements()
    assert svc.consume(org.tenant_id, "tokens", D(3990)).allowed
    grant = org.add_grant(D(100))
    taken = svc.consume(org.tenant_id, "tokens", D(50), entity_id="u0", idempotency_key="g-take")
    assert taken.allowed
    assert taken.grants_used == ((grant, D(40)),)
    assert org.tenant_used()[0] == 4000
    assert org.grant_remaining(grant) == 60
    assert org.entity_used("u0")[0] == 50
    assert org.entity_used("team-a")[0] == 50
    replay = org.entitlements(seed=9).consume(org.tenant_id, "tokens", D(50), entity_id="u0", idempotency_key="g-take")
    assert replay.replayed
    assert replay.grants_used == ((grant, D(40)),)
    assert org.grant_remaining(grant) == 60
    # A reservation naming an entity draws too, and the quota and grants together short refuse at the tenant.
    held, _ = org.reservations().reserve(org.tenant_id, "tokens", D(30), entity_id="u1")
    assert held.grants == ((grant, D(30)),)
    assert org.grant_remaining(grant) == 30
    short = svc.consume(org.tenant_id, "tokens", D(31), entity_id="u2")
    assert (short.allowed, short.refused_by, short.grant_remaining) == (False, "tenant", 30)
    assert org.entity_used("u2")[0] == 0
    assert svc.consume(org.tenant_id, "tokens", D(30), entity_id="u2").allowed
    assert org.grant_remaining(grant) == 0
    assert org.entity_used("team-a")[0] == 110


def test_the_catalog_refuses_windows_it_cannot_keep() -> None:
    import json

    data = json.loads(CATALOG)
    data["plans"]["windowed"]["counter_shards"] = 4
    with pytest.raises(ValidationError, match="counter_shards = 1"):
        parse_catalog(json.dumps(data))
    data = json.loads(CATALOG)
    data["plans"]["windowed"]["quotas"]["tokens"]["windows"] = {"month": "1000"}
    with pytest.raises(ValidationError):
        parse_catalog(json.dumps(data))
    data["plans"]["windowed"]["quotas"]["tokens"]["windows"] = {"minute": "-1"}
    with pytest.raises(ValidationError):
        parse_catalog(json.dumps(data))


def test_a_grant_draw_counts_the_whole_take_in_the_plan_window(org: Org) -> None:
    org.apply()
    assert org.entitlements().consume(org.tenant_id, "tokens", D(3990)).allowed
    org.apply("windowed-wide")  # same period: the usage is kept, the window starts with the next take
    grant = org.add_grant(D(100))
    svc = org.entitlements()
    taken = svc.consume(org.tenant_id, "tokens", D(50))
    assert taken.allowed
    assert taken.grants_used == ((grant, D(40)),)
    assert window_used(org) == 50  # the quota paid 10, the grant 40: the window counts all of it
    keyed = svc.consume(org.tenant_id, "tokens", D(30), idempotency_key="draw-k")
    assert keyed.grants_used == ((grant, D(30)),)
    assert window_used(org) == 80
    assert org.grant_remaining(grant) == 30
