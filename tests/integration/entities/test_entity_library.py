"""The library with entities, on DynamoDB Local: `check_and_record(..., entity=)` on both faces,
`reserve(..., entity=)`, `require_entitlement(entity=callable)`, and the FastAPI dependency resolving the
entity from the request (402 naming the level; 429 with Retry-After for a window)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from fastapi import Depends, FastAPI, Header
from fastapi.testclient import TestClient

from billing_platform import EntitlementEnforcer, require_entitlement
from billing_platform.entitlements.models import EntitlementCheck
from billing_platform.fastapi_quota import quota_dependency
from tests.factories.entities import KEY, Org

pytestmark = [pytest.mark.ddblocal, pytest.mark.xdist_group("ddblocal")]


@pytest.fixture
def org(ddb_local_tables: dict[str, str], dynamodb_local: Any) -> Org:
    org = Org(ddb_local_tables, dynamodb_local.endpoint_url)
    org.apply()
    org.build()
    return org


def test_both_faces_take_and_give_back_at_the_entitys_levels(org: Org) -> None:
    enforcer = EntitlementEnforcer(org.entitlements())
    sync = enforcer.sync.check_and_record(org.tenant_id, "tokens", 5, entity="u1")
    assert (sync.allowed, sync.entity_id) == (True, "u1")
    assert org.entity_used("team-a")[0] == 5
    keyed = asyncio.run(enforcer.check_and_record(org.tenant_id, "tokens", "7", entity="u1", idempotency_key="a1"))
    assert keyed.allowed
    assert org.entity_used("u1")[0] == 12
    asyncio.run(enforcer.release(keyed))
    enforcer.sync.release(sync)
    assert org.entity_used("u1")[0] == 0
    assert org.entity_used("team-a")[0] == 0
    assert not enforcer.sync.check(org.tenant_id, "tokens", 151, entity=KEY).allowed


def test_a_reservation_through_the_library_settles_at_the_entitys_levels(org: Org) -> None:
    enforcer = EntitlementEnforcer(org.entitlements())
    enforcer.sync._reservations, enforcer.sync._reservations_over = org.reservations(), enforcer.service

    async def work() -> None:
        async with enforcer.reserve(org.tenant_id, "tokens", 60, entity=KEY) as hold:
            assert org.entity_used(KEY)[0] == 60
            hold.settle(45)

    asyncio.run(work())
    assert org.entity_used(KEY)[0] == 45
    assert org.entity_used("team-a")[0] == 45


def build_app(org: Org, enforcer: EntitlementEnforcer) -> FastAPI:
    app = FastAPI()

    def current_tenant() -> str:
        return org.tenant_id

    def current_user(x_user: str = Header()) -> str:
        return x_user

    take = quota_dependency("tokens", 100, tenant=current_tenant, entity=current_user, enforcer=enforcer)

    @app.post("/generate")
    async def generate(check: EntitlementCheck = Depends(take)) -> dict[str, Any]:
        return {"entity": check.entity_id, "allowed": check.allowed}

    @app.post("/summarise")
    @require_entitlement("tokens", Decimal(30), entity=lambda tenant_id, user, **_: user, enforcer=enforcer)
    async def summarise(tenant_id: str, user: str) -> dict[str, str]:
        return {"user": user}

    return app


def test_the_fastapi_dependency_resolves_the_entity_from_the_request(org: Org) -> None:
    client = TestClient(build_app(org, EntitlementEnforcer(org.entitlements())))
    first = client.post("/generate", headers={"x-user": KEY})
    assert (first.status_code, first.json()["entity"]) == (200, KEY)
    refused = client.post("/generate", headers={"x-user": KEY})
    assert refused.status_code == 402
    assert refused.json()["detail"]["details"]["refused_by"] == f"entity:{KEY}"
    for _ in range(4):
        assert client.post("/generate", headers={"x-user": "u5"}).status_code == 200
    window = client.post("/generate", headers={"x-user": "u6"})
    assert window.status_code == 429
    assert 1 <= int(window.headers["Retry-After"]) <= 60
    assert window.json()["detail"]["code"] == "window_exceeded"
    decorated = client.post("/summarise", params={"tenant_id": org.tenant_id, "user": "u2"})
    assert decorated.status_code == 200
    assert org.entity_used("u2")[0] == 30
