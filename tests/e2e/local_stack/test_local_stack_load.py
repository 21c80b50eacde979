"""`make dev` under load, as a new user's first test would load it: 256 concurrent HTTP clients consume one
tenant's quota through the real gateway, authorizer and entitlements containers on DynamoDB Local, with
keep-alive connections and with a new connection per request. Every request must get an HTTP answer (no
connection reset or refused), each answer must be one API Gateway could give for it, and the quota must
be exact: grants = min(requests that reached the function, limit), and the stored `used` agrees."""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from decimal import Decimal
from urllib.parse import urlsplit

import pytest

from tests.factories.local_stack_process import LocalStackProcess

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("local_stack_load"),
    pytest.mark.stack_args("--no-pollers", "--no-hooks"),
]

CLIENTS = 256
REQUESTS_PER_CLIENT = 2
LIMIT = Decimal(100)  # the free plan's `executions` (hard): 512 attempts must grant exactly 100
ANSWERS = {200, 402, 429}  # granted, quota exhausted, throttled (stage or function concurrency)


def _tenant_key(stack: LocalStackProcess, tenant: str) -> str:
    status, body = stack.request("POST", f"/v1/tenants/{tenant}/api-keys", {"name": "load"})
    assert status == 201, body
    return str(body["secret"])


def _consume_all(base_url: str, tenant: str, key: str, *, keep_alive: bool) -> tuple[Counter[int], list[str]]:
    """CLIENTS threads released together, REQUESTS_PER_CLIENT consumes each: (status counts, failures)."""
    url = urlsplit(base_url)
    body = json.dumps({"tenant_id": tenant, "resource_type": "executions", "quantity": 1})
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if not keep_alive:
        headers["Connection"] = "close"
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    def client() -> None:
        connection: http.client.HTTPConnection | None = None
        start.wait(60)
        for _ in range(REQUESTS_PER_CLIENT):
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=120)
                connection.request("POST", "/v1/entitlements/consume", body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                with lock:
                    statuses[response.status] += 1
                if not keep_alive or response.getheader("Connection", "").lower() == "close":
                    connection.close()
                    connection = None
            except OSError as exc:  # reset, refused, timed out: what must never happen
                with lock:
                    failures.append(f"{type(exc).__name__}: {exc}")
                if connection is not None:
                    connection.close()
                connection = None
        if connection is not None:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    return statuses, failures


@pytest.mark.parametrize("keep_alive", [True, False], ids=["keep-alive", "connection-per-request"])
def test_256_concurrent_clients_all_get_an_answer_and_the_quota_is_exact(
    stack: LocalStackProcess, keep_alive: bool
) -> None:
    tenant = "t_load_keepalive" if keep_alive else "t_load_short"
    key = _tenant_key(stack, tenant)
    # One call first, as a developer's first curl: the stage caches the authorizer's answer for this key
    # (as API Gateway does), so the burst measures the server and the quota rather than 256 simultaneous
    # cold authorizer runs. It consumes nothing (check, not consume).
    check = {"tenant_id": tenant, "resource_type": "executions", "quantity": 1}
    status, answer = stack.request("POST", "/v1/entitlements/check", check, token=key)
    assert status == 200, answer

    statuses, failures = _consume_all(stack.banner.base_url, tenant, key, keep_alive=keep_alive)

    assert failures == [], f"{len(failures)} requests got no HTTP answer: {failures[:5]}"
    assert sum(statuses.values()) == CLIENTS * REQUESTS_PER_CLIENT
    assert set(statuses) <= ANSWERS, f"{statuses}\n{stack.diagnostics(40)}"
    reached = statuses[200] + statuses[402]
    assert statuses[200] == min(reached, int(LIMIT)), statuses
    status, entitlements = stack.request("GET", f"/v1/tenants/{tenant}/entitlements", token=key)
    assert status == 200, entitlements
    quota = next(q for q in entitlements["quotas"] if q["resource_type"] == "executions")
    assert Decimal(quota["used"]) == statuses[200]
    assert Decimal(quota["limit"]) == LIMIT
