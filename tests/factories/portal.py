"""A tenant seeded over HTTP with everything the portal shows: two credit grants (one with a hostile
reason, one expiring), quota consumed past the 50 % threshold (an event), two open reservations and usage
records spread over the last days; and portal tokens for it. Used by the browser tests of the pages and by
anyone trying the portal on `make dev`."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# (method, path, JSON body, bearer token or None for the operator) -> (status, JSON answer)
Request = Callable[..., tuple[int, Any]]

HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"
USAGE_BY_DAYS_AGO = {0: 40, 1: 125, 2: 60, 4: 210, 6: 15}


@dataclass(frozen=True)
class SeededTenant:
    tenant_id: str
    api_key: str
    portal_token: str
    grant_ids: tuple[str, ...]
    reservation_ids: tuple[str, ...]
    usage_total: int


def _ok(answer: tuple[int, Any], *expected: int) -> Any:
    status, body = answer
    assert status in expected, (status, body)
    return body


def mint_portal_token(request: Request, tenant_id: str, **body: Any) -> dict[str, Any]:
    answer: dict[str, Any] = _ok(request("POST", f"/v1/tenants/{tenant_id}/portal-tokens", body or {}), 201)
    return answer


def seed_portal_tenant(request: Request, tenant_id: str, *, now: datetime | None = None) -> SeededTenant:
    """The tenant on the free plan (1,000 api_calls, thresholds 50/80/100 %) with grants, an event,
    reservations and usage; returns its API key and a portal token (1 hour)."""
    now = now or datetime.now(UTC)
    key = _ok(request("POST", f"/v1/tenants/{tenant_id}/api-keys", {"name": "portal seed"}), 201)["secret"]
    grants = (
        _ok(
            request(
                "POST",
                f"/v1/tenants/{tenant_id}/grants",
                {"resource_type": "api_calls", "amount": "500", "reason": HOSTILE},
            ),
            201,
        )["grant_id"],
        _ok(
            request(
                "POST",
                f"/v1/tenants/{tenant_id}/grants",
                {
                    "resource_type": "tokens",
                    "amount": "2500",
                    "reason": "Launch promotion",
                    "expires_at": (now + timedelta(days=20)).replace(microsecond=0).isoformat(),
                },
            ),
            201,
        )["grant_id"],
    )
    for quantity in (400, 220):  # 620 of 1,000: past the 50 % threshold
        body = {"tenant_id": tenant_id, "resource_type": "api_calls", "quantity": quantity}
        _ok(request("POST", "/v1/entitlements/consume", body, token=key), 200)
    reservations = tuple(
        _ok(
            request(
                "POST",
                "/v1/entitlements/reservations",
                {"tenant_id": tenant_id, "resource_type": resource, "estimate": estimate, "ttl_seconds": 3600},
                token=key,
            ),
            201,
        )["reservation_id"]
        for resource, estimate in (("executions", "5"), ("tokens", "1200"))
    )
    records = [
        {
            "record_id": f"seed-{uuid.uuid4().hex}",
            "tenant_id": tenant_id,
            "resource_type": "api_calls",
            "quantity": quantity,
            "timestamp": (now - timedelta(days=days_ago)).replace(microsecond=0).isoformat(),
        }
        for days_ago, quantity in USAGE_BY_DAYS_AGO.items()
    ]
    _ok(request("POST", "/v1/usage", {"records": records}, token=key), 202)
    token = mint_portal_token(request, tenant_id, ttl_seconds=3600, label="browser test")["token"]
    return SeededTenant(tenant_id, key, token, grants, reservations, sum(USAGE_BY_DAYS_AGO.values()))


# Token usage of the metered tenant: (hours ago, model, entity or None, quantity). Two models, two entities and
# usage without an entity, over two days, so every grouping (model, entity, by day, by hour) has something.
METERED_USAGE = (
    (1, "large", "team-a", 300),
    (1, "small", "team-b", 1200),
    (3, "small", "team-a", 450),
    (5, "large", None, 80),
    (26, "small", "team-b", 700),
    (27, "large", "team-a", 125),
)
ENTITIES = (("team-a", "team", "Team A"), ("team-b", "team", HOSTILE))
ENTITY_LIMIT = "5000"


@dataclass(frozen=True)
class MeteredTenant:
    tenant_id: str
    admin_key: str
    portal_token: str
    entity_token: str
    entity_id: str
    sibling_id: str
    usage_total: int


def seed_metered_tenant(
    request: Request, tenant_id: str, *, now: datetime | None = None, allowed_origins: tuple[str, ...] = ()
) -> MeteredTenant:
    """A tenant on the pro plan (priced: a spend cap applies) with two entities (one named with markup), a
    limit on tokens for the first, token usage by model and entity, an admin API key, a tenant portal token
    and a portal token of the first entity (both readable from `allowed_origins`). The plan arrives through
    the local provider's signed webhook: poll the entitlements for `pro` before relying on it."""
    now = now or datetime.now(UTC)
    _ok(request("POST", "/v1/customers", {"tenant_id": tenant_id, "email": "portal@example.com"}), 201)
    _ok(request("POST", "/v1/subscriptions", {"tenant_id": tenant_id, "price_id": "price_pro_monthly"}), 201)
    key = _ok(request("POST", f"/v1/tenants/{tenant_id}/api-keys", {"name": "portal admin", "scope": "admin"}), 201)
    for entity_id, kind, name in ENTITIES:
        body = {"id": entity_id, "kind": kind, "name": name}
        _ok(request("POST", f"/v1/tenants/{tenant_id}/entities", body), 201)
    limit = {"kind": "absolute", "amount": ENTITY_LIMIT}
    _ok(request("PUT", f"/v1/tenants/{tenant_id}/entities/team-a/limits/tokens", limit), 200, 201)
    records = [
        {
            "record_id": f"metered-{uuid.uuid4().hex}",
            "tenant_id": tenant_id,
            "resource_type": "tokens",
            "quantity": quantity,
            "timestamp": (now - timedelta(hours=hours_ago)).replace(microsecond=0).isoformat(),
            "dimensions": {"model": model},
            **({"entity_id": entity} if entity else {}),
        }
        for hours_ago, model, entity, quantity in METERED_USAGE
    ]
    _ok(request("POST", "/v1/usage", {"records": records}, token=key["secret"]), 202)
    origins = {"allowed_origins": list(allowed_origins)} if allowed_origins else {}
    token = mint_portal_token(request, tenant_id, ttl_seconds=3600, label="metered", **origins)["token"]
    entity_token = mint_portal_token(request, tenant_id, ttl_seconds=3600, entity_id="team-a", **origins)["token"]
    return MeteredTenant(
        tenant_id, key["secret"], token, entity_token, "team-a", "team-b", sum(q for *_, q in METERED_USAGE)
    )
