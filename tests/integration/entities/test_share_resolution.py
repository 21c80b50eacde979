"""A share follows its parent, on DynamoDB Local: resolved again when the parent's limit is changed or
removed and when the plan quota changes, shallowest first (a share of a share follows too), keeping what
each level used in its period, each change audited."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from billing_platform.audit.log import AuditLog
from billing_platform.entities.models import LimitKind, LimitTerms
from billing_platform.entities.repository import limit_key
from tests.factories.entities import OPERATOR, Org

pytestmark = [pytest.mark.ddblocal, pytest.mark.xdist_group("ddblocal")]
D = Decimal


@pytest.fixture
def org(ddb_local_tables: dict[str, str], dynamodb_local: Any) -> Org:
    org = Org(ddb_local_tables, dynamodb_local.endpoint_url)
    org.apply()
    org.build()
    return org


def test_shares_follow_a_plan_change_keeping_what_they_used(org: Org) -> None:
    assert org.entity_used("team-b") == (0, 1600)  # 40 % of 4000
    assert org.entitlements().consume(org.tenant_id, "tokens", D(100), entity_id="u4").allowed
    org.apply("org-large")
    assert org.entity_used("team-b") == (100, 3200)  # 40 % of 8000
    assert org.entity_used("u4") == (100, 1120)  # 35 % of team-b's new limit
    assert org.entity_used("u5") == (0, 1120)
    assert org.entity_used("team-a") == (0, 1800)  # absolute: unchanged
    item = org.item(limit_key(org.tenant_id, "u4", "tokens"))
    assert D(item["remaining"]["N"]) == 1020
    # The new limit is what a take is held to (the period refusal is named before team-b's minute window).
    refused = org.entitlements().consume(org.tenant_id, "tokens", D(1021), entity_id="u4")
    assert (refused.allowed, refused.refused_by) == (False, "entity:u4")
    assert org.entitlements().consume(org.tenant_id, "tokens", D(300), entity_id="u4").allowed


def test_shares_follow_their_parent_s_limit_when_it_changes_or_goes(org: Org) -> None:
    svc = org.entities()
    svc.set_limit(org.tenant_id, "u0", "tokens", LimitTerms(LimitKind.SHARE, share_percent=D(50)), actor=OPERATOR)
    assert org.entity_used("u0") == (0, 900)  # 50 % of team-a's 1800
    svc.set_limit(org.tenant_id, "team-a", "tokens", LimitTerms(LimitKind.ABSOLUTE, amount=D(1000)), actor=OPERATOR)
    assert org.entity_used("u0") == (0, 500)
    svc.delete_limit(org.tenant_id, "team-a", "tokens", actor=OPERATOR)
    assert org.entity_used("u0") == (0, 2000)  # no limited ancestor: 50 % of the plan's 4000
    actions = [e.action for e in AuditLog(org.settings, org.client).list(org.tenant_id, limit=100)]
    assert actions.count("entity.limit_resolved") == 2
