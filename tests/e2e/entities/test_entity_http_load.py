"""The entity take over the local stack (real gateway, authorizer and function containers on DynamoDB
Local), as a tenant would use it: its admin key builds the organisation (2 teams, 8 users, a key entity
under a user, limits at every level, a per-minute window on one team) and binds a key; the plan itself caps
tokens per minute too. Then 64 HTTP clients consume tokens naming users, through the bound key, and for the
tenant alone. At the end every level's stored `used` equals what the 200 answers granted, none is above its
limit (no window above its limit in any minute spanned), every 402 names a level of the request's chain,
and every window refusal is a 429 with Retry-After."""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest

from billing_platform.catalog.models import DEFAULT_CATALOG
from tests.factories.local_stack_process import LocalStackProcess

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("local_stack_entities"),
    pytest.mark.stack_args("--no-pollers", "--no-hooks"),
]

CLIENTS = 64
REQUESTS_PER_CLIENT = 6
TENANT = "t_org_http"
TEAMS = {"team-a": ["u0", "u1", "u2", "u3"], "team-b": ["u4", "u5", "u6", "u7"]}
KEY_ENTITY = "key-k0"
WINDOW = 60  # team-b's tokens per minute
LIMITS = {"team-a": "300", "u0": "100", "u1": "100", "u2": "100", "u3": "100", KEY_ENTITY: "40"}
PLAN_LIMIT = Decimal(1000)  # the run's catalog: the free plan grants 1,000 tokens a period...
PLAN_WINDOW = Decimal(250)  # ...and 250 a minute


def chain(entity: str | None) -> list[str]:
    if entity is None:
        return ["tenant"]
    if entity == KEY_ENTITY:
        return ["tenant", "entity:team-a", "entity:u0", f"entity:{KEY_ENTITY}"]
    team = next(t for t, users in TEAMS.items() if entity in users)
    return ["tenant", f"entity:{team}", f"entity:{entity}"]


@pytest.fixture(scope="module")
def stack_environ(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The shared `stack` fixture starts the stack with these: the free plan bound by a per-minute window."""
    catalog = json.loads(DEFAULT_CATALOG.read_text(encoding="utf-8"))
    catalog["plans"]["free"]["quotas"]["tokens"] = {
        "limit": str(PLAN_LIMIT),
        "policy": "hard",
        "windows": {"minute": str(PLAN_WINDOW)},
    }
    path = tmp_path_factory.mktemp("catalog") / "plans.json"
    path.write_text(json.dumps(catalog), encoding="utf-8")
    return {"PLAN_CATALOG_PATH": str(path)}  # the stack's functions read the plans from there


def _key(stack: LocalStackProcess, scope: str) -> tuple[str, str]:
    status, body = stack.request("POST", f"/v1/tenants/{TENANT}/api-keys", {"name": scope, "scope": scope})
    assert status == 201, body
    return str(body["secret"]), str(body["id"])


def _organise(stack: LocalStackProcess, admin: str, bound_key_id: str) -> None:
    """What a tenant's admin does, over HTTP with its own key."""
    for team, users in TEAMS.items():
        status, body = stack.request("POST", "/v1/entities", {"id": team, "kind": "team"}, token=admin)
        assert status == 201, body
        for user in users:
            status, body = stack.request("POST", "/v1/entities", {"id": user, "parent_id": team}, token=admin)
            assert status == 201, body
    assert stack.request("POST", "/v1/entities", {"id": KEY_ENTITY, "parent_id": "u0"}, token=admin)[0] == 201
    for entity, amount in LIMITS.items():
        status, body = stack.request("PUT", f"/v1/entities/{entity}/limits/tokens", {"amount": amount}, token=admin)
        assert status == 200, body
    share = {"kind": "share", "share_percent": "50", "windows": {"minute": str(WINDOW)}}  # 50 % of 1,000 = 500
    assert stack.request("PUT", "/v1/entities/team-b/limits/tokens", share, token=admin)[0] == 200
    for user in TEAMS["team-b"]:
        status, body = stack.request(
            "PUT", f"/v1/entities/{user}/limits/tokens", {"kind": "share", "share_percent": "30"}, token=admin
        )
        assert status == 200, body
    status, body = stack.request("PUT", f"/v1/api-keys/{bound_key_id}/entity", {"entity_id": KEY_ENTITY}, token=admin)
    assert (status, body.get("entity_id")) == (200, KEY_ENTITY), body


def test_64_http_clients_take_at_every_level_exactly(stack: LocalStackProcess) -> None:
    admin, _ = _key(stack, "admin")
    user_key, _ = _key(stack, "use")
    bound_key, bound_id = _key(stack, "use")
    _organise(stack, admin, bound_id)
    # Refused to a `use` key: only admin keys manage the organisation.
    assert stack.request("POST", "/v1/entities", {"id": "x"}, token=user_key)[0] == 403
    for key in (user_key, bound_key):  # the stage caches each key's authorizer answer, as API Gateway does
        check = {"tenant_id": TENANT, "resource_type": "tokens", "quantity": 1}
        assert stack.request("POST", "/v1/entitlements/check", check, token=key)[0] == 200

    url = urlsplit(stack.banner.base_url)
    granted: dict[str, Decimal] = defaultdict(Decimal)
    statuses: Counter[str] = Counter()
    problems: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)
    users = [u for team in TEAMS.values() for u in team]

    def client(index: int) -> None:
        rng = random.Random(index)
        connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=120)
        start.wait(60)
        for _ in range(REQUESTS_PER_CLIENT):
            roll = rng.random()
            quantity = rng.randint(1, 6)
            body: dict[str, Any] = {"tenant_id": TENANT, "resource_type": "tokens", "quantity": quantity}
            key, entity = user_key, None
            if roll < 0.25:
                key, entity = bound_key, KEY_ENTITY  # names nothing: the key's binding decides
            elif roll < 0.8:
                entity = rng.choice(users)
                body["entity_id"] = entity
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            connection.request("POST", "/v1/entitlements/consume", body=json.dumps(body), headers=headers)
            response = connection.getresponse()
            answer = json.loads(response.read() or b"null")
            with lock:
                if response.status == 200:
                    for level in chain(entity):
                        granted[level] += quantity
                    statuses["200"] += 1
                elif response.status == 402:
                    refused_by = answer["details"].get("refused_by") or "tenant"
                    statuses[f"402 {refused_by}"] += 1
                    if refused_by not in chain(entity):
                        problems.append(f"402 names {refused_by} for {entity}: {answer}")
                elif response.status == 429:
                    statuses[f"429 {answer['code']} {(answer.get('details') or {}).get('refused_by')}"] += 1
                    statuses[f"429 {answer['code']}"] += 1
                    if answer["code"] == "window_exceeded" and not response.getheader("Retry-After"):
                        problems.append(f"window 429 without Retry-After: {answer}")
                else:
                    problems.append(f"{response.status}: {answer}")
        connection.close()

    first_minute = int(time.time()) // 60
    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    minutes = int(time.time()) // 60 - first_minute + 1
    assert not problems, problems[:5]
    # The stack's clock is real time: the run may span a minute boundary or two, each window holds WINDOW.
    assert granted["entity:team-b"] <= WINDOW * minutes, (granted["entity:team-b"], minutes)
    assert granted["tenant"] <= PLAN_WINDOW * minutes, (granted["tenant"], minutes)
    assert statuses["429 window_exceeded"] > 0, statuses
    assert statuses["429 window_exceeded tenant"] > 0, statuses  # the plan's own window refused too
    print("\nentity HTTP run:", dict(statuses), {k: str(v) for k, v in granted.items()})

    status, entitlements = stack.request("GET", f"/v1/tenants/{TENANT}/entitlements", token=user_key)
    quota = next(q for q in entitlements["quotas"] if q["resource_type"] == "tokens")
    assert Decimal(quota["used"]) == granted["tenant"]
    assert Decimal(quota["used"]) <= Decimal(quota["limit"])
    for entity in [*TEAMS, *users, KEY_ENTITY]:
        status, limits = stack.request("GET", f"/v1/entities/{entity}/limits", token=admin)
        assert status == 200, limits
        item = limits["items"][0]
        assert Decimal(item["used"]) == granted[f"entity:{entity}"], (entity, item, granted[f"entity:{entity}"])
        assert Decimal(item["used"]) <= Decimal(item["limit"])
    assert any(s.startswith("402 entity:") for s in statuses), statuses
