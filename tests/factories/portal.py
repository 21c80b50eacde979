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
