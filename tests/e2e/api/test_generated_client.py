"""A client generated from the OpenAPI document, as a customer would generate one: openapi-python-client reads
the local stack's served /openapi.json (into a temporary folder, never committed), and the generated code
alone then creates a tenant key, consumes, reserves and settles against the real handlers over HTTP.

Every answer must come back as the generated typed model (not a bag of additional properties), with the
numbers the API documents: quantities as decimal text, instants parsed into datetimes."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.factories.local_stack_process import LocalStackProcess

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local_stack_generated_client")]

PACKAGE = "generated_billing_client"
GENERATOR = Path(sys.executable).parent / "openapi-python-client"


@pytest.fixture(scope="module")
def client_package(stack: LocalStackProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The package openapi-python-client generates from the served document, imported from a temp folder."""
    folder = tmp_path_factory.mktemp("generated")
    status, document = stack.request("GET", "/openapi.json")
    assert status == 200, document
    (folder / "openapi.json").write_text(json.dumps(document))
    # No post hooks: the generated code is run, not formatted.
    (folder / "config.yaml").write_text("post_hooks: []\n")
    generated = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(folder / "openapi.json"),
            "--config",
            str(folder / "config.yaml"),
            "--meta",
            "none",
            "--output-path",
            str(folder / PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = generated.stdout + generated.stderr
    assert generated.returncode == 0, output
    # The generator warns about every part of the document it cannot turn into code (and leaves it out).
    assert "Warning" not in output, output
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(folder))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def _module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_generated_client_creates_a_key_consumes_reserves_and_settles(
    stack: LocalStackProcess, client_package: ModuleType
) -> None:
    models = _module("models")
    create_api_key = _module("api.api_keys.create_api_key")
    consume = _module("api.entitlements.consume")
    get_entitlements = _module("api.entitlements.get_entitlements")
    reserve = _module("api.reservations.reserve")
    settle = _module("api.reservations.settle")
    base_url = stack.banner.base_url
    tenant = f"gen_{str(int(time.time() * 1000))[-8:]}"

    operator = client_package.AuthenticatedClient(base_url=base_url, token=stack.banner.operator_token)
    created = create_api_key.sync(tenant_id=tenant, client=operator, body=models.CreateApiKey(name="generated"))
    assert isinstance(created, models.CreatedApiKeyOut), created
    assert (created.tenant_id, created.status) == (tenant, models.CreatedApiKeyOutStatus.ACTIVE)
    tenant_client = client_package.AuthenticatedClient(base_url=base_url, token=created.secret)

    taken = consume.sync(
        client=tenant_client,
        body=models.QuotaRequest(tenant_id=tenant, resource_type="tokens", quantity="5", idempotency_key="gen-1"),
    )
    assert isinstance(taken, models.EntitlementOut), taken
    assert (taken.allowed, taken.quantity, taken.used, taken.replayed) == (True, "5", "5", False)
    assert taken.policy == models.QuotaPolicy.HARD
    assert isinstance(taken.resets_at, datetime)
    assert taken.additional_properties == {}
    again = consume.sync(
        client=tenant_client,
        body=models.QuotaRequest(tenant_id=tenant, resource_type="tokens", quantity="5", idempotency_key="gen-1"),
    )
    assert isinstance(again, models.EntitlementOut)
    assert (again.replayed, again.used) == (True, "5")

    refused = consume.sync_detailed(
        client=tenant_client, body=models.QuotaRequest(tenant_id=tenant, resource_type="tokens", quantity="1e12")
    )
    assert refused.status_code == 402
    assert isinstance(refused.parsed, models.ErrorBody)
    assert refused.parsed.code == "quota_exceeded"

    held = reserve.sync_detailed(
        client=tenant_client,
        body=models.ReserveRequest(tenant_id=tenant, resource_type="tokens", estimate="40"),
    )
    assert held.status_code == 201
    reservation = held.parsed
    assert isinstance(reservation, models.ReservationOut), reservation
    assert (reservation.state, reservation.estimate) == (models.ReservationState.HELD, "40")
    assert isinstance(reservation.expires_at, datetime)

    settled = settle.sync(
        reservation_id=reservation.reservation_id, client=tenant_client, body=models.SettleRequest(quantity="12")
    )
    assert isinstance(settled, models.ReservationOut), settled
    assert (settled.state, settled.charged, settled.given_back) == (models.ReservationState.SETTLED, "12", "28")
    assert isinstance(settled.resolved_at, datetime)

    view = get_entitlements.sync(tenant_id=tenant, client=tenant_client)
    assert isinstance(view, models.TenantEntitlementsOut), view
    tokens = {quota.resource_type: quota for quota in view.quotas}["tokens"]
    assert isinstance(tokens, models.QuotaOut)
    assert tokens.used == "17"  # 5 consumed once (the retry replayed) + 12 settled
    assert tokens.state == models.CounterState.ACTIVE
