"""The library inside a FastAPI app, through FastAPI's TestClient with moto DynamoDB: the
`get_entitlement_enforcer` dependency, `check_entitlement_or_raise` as a 402 `HTTPException` carrying the
HTTP API's own 402 body, and `@require_entitlement` on async endpoints whose parameters carry `tenant_id`."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import ModuleType
from typing import Any
from uuid import UUID

import pytest
from fastapi import Depends, FastAPI, HTTPException
from fastapi.testclient import TestClient

from billing_platform import (
    EntitlementEnforcementError,
    EntitlementEnforcer,
    check_entitlement_or_raise,
    get_entitlement_enforcer,
    require_entitlement,
)
from billing_platform.enforcer import shared_service
from tests.factories.apigw import api_event, json_body
from tests.factories.handlers import load_handler
from tests.factories.lambda_context import LambdaContext

TENANT = UUID("0b7e5c9a-3f0e-4d8e-9a51-7c2d8e1f4a66")
NOW = datetime.now(UTC).replace(microsecond=0)
PERIOD = {"period_start": NOW - timedelta(days=3), "period_end": NOW + timedelta(days=27)}
FREE_EXECUTIONS = 100


def build_app() -> tuple[FastAPI, list[str]]:
    app = FastAPI()
    ran: list[str] = []

    @app.post("/workflows/{workflow_id}/execute")
    async def execute_workflow(
        workflow_id: UUID,
        tenant_id: UUID,
        quantity: int = 1,
        enforcer: EntitlementEnforcer = Depends(get_entitlement_enforcer),
    ) -> dict[str, Any]:
        check = await enforcer.check_and_record(
            tenant_id=tenant_id, resource_type="executions", quantity=Decimal(quantity)
        )
        check_entitlement_or_raise(check)
        ran.append(str(workflow_id))
        return {"remaining": str(check.remaining)}

    @app.post("/decorated/{workflow_id}")
    @require_entitlement("executions", quantity=Decimal("1"))
    async def decorated(
        tenant_id: UUID, workflow_id: UUID, fail: bool = False, enforcer: EntitlementEnforcer = Depends()
    ) -> dict[str, Any]:
        if fail:
            raise RuntimeError("the workflow failed")
        ran.append(str(workflow_id))
        return {"ran": str(workflow_id)}

    @app.post("/caught")
    async def caught(tenant_id: UUID, enforcer: EntitlementEnforcer = Depends(get_entitlement_enforcer)) -> Any:
        try:
            check_entitlement_or_raise(await enforcer.check_and_record(tenant_id, "executions", 1))
        except EntitlementEnforcementError as exc:  # the library's own type, as well as HTTPException
            return {"caught": exc.code}
        return {"caught": None}

    return app, ran


@pytest.fixture
def app(moto_aws: dict[str, str]) -> tuple[FastAPI, list[str]]:
    shared_service().apply_plan(str(TENANT), "free", **PERIOD, source_version=1)
    return build_app()


def used() -> Decimal:
    return shared_service().check(str(TENANT), "executions", Decimal(1)).used


def test_dependency_gives_the_process_enforcer_and_402_carries_the_api_body(app: tuple[FastAPI, list[str]]) -> None:
    fastapi_app, ran = app
    client = TestClient(fastapi_app, raise_server_exceptions=False)
    url = f"/workflows/{UUID(int=1)}/execute"
    ok = client.post(url, params={"tenant_id": str(TENANT), "quantity": FREE_EXECUTIONS - 1})
    assert (ok.status_code, ok.json()) == (200, {"remaining": "1"})
    denied = client.post(url, params={"tenant_id": str(TENANT), "quantity": 2})
    assert denied.status_code == 402
    assert used() == FREE_EXECUTIONS - 1  # a denial consumed nothing
    assert ran == [str(UUID(int=1))]

    # The same refusal through the platform's own HTTP API (the real Lambda handler).
    entitlements: ModuleType = load_handler("entitlements")
    response = entitlements.handler(
        api_event(
            "POST",
            "/v1/entitlements/consume",
            {"tenant_id": str(TENANT), "resource_type": "executions", "quantity": 2},
            tenant_id=str(TENANT),
        ),
        LambdaContext(),
    )
    assert response["statusCode"] == 402
    assert denied.json() == {"detail": json_body(response)}
    assert denied.json()["detail"]["code"] == "quota_exceeded"


def test_require_entitlement_on_an_endpoint_consumes_refuses_and_gives_back(app: tuple[FastAPI, list[str]]) -> None:
    fastapi_app, ran = app
    client = TestClient(fastapi_app, raise_server_exceptions=False)
    workflow = UUID(int=2)
    assert client.post(f"/decorated/{workflow}", params={"tenant_id": str(TENANT)}).json() == {"ran": str(workflow)}
    assert used() == 1
    failed = client.post(f"/decorated/{workflow}", params={"tenant_id": str(TENANT), "fail": True})
    assert failed.status_code == 500
    assert used() == 1  # given back: the endpoint raised
    assert client.post(f"/decorated/{workflow}", params={"tenant_id": "not a tenant"}).status_code == 422
    assert used() == 1

    shared_service().consume(str(TENANT), "executions", Decimal(FREE_EXECUTIONS - 1))
    refused = client.post(f"/decorated/{workflow}", params={"tenant_id": str(TENANT)})
    assert refused.status_code == 402
    assert refused.json()["detail"]["resource_type"] == "executions"
    assert ran == [str(workflow)]


def test_the_402_is_also_the_library_error(app: tuple[FastAPI, list[str]]) -> None:
    fastapi_app, _ = app
    shared_service().consume(str(TENANT), "executions", Decimal(FREE_EXECUTIONS))
    client = TestClient(fastapi_app)
    assert client.post("/caught", params={"tenant_id": str(TENANT)}).json() == {"caught": "quota_exceeded"}
    check = shared_service().check(str(TENANT), "executions", Decimal(1))
    with pytest.raises(HTTPException) as raised:
        check_entitlement_or_raise(check)
    assert isinstance(raised.value, EntitlementEnforcementError)
    assert (raised.value.status_code, raised.value.detail) == (402, raised.value.to_dict())


def test_without_fastapi_the_error_is_the_plain_library_error_and_fastapi_is_never_loaded() -> None:
    """A Lambda's process: FastAPI is not imported, so the refusal is the library's own typed error and
    checking it loads nothing from FastAPI."""
    script = textwrap.dedent(
        """
        import sys
        from decimal import Decimal
        from billing_platform import QuotaExceededError, check_entitlement_or_raise
        from billing_platform.entitlements.models import EntitlementCheck
        denied = EntitlementCheck(
            tenant_id="t1", resource_type="executions", quantity=Decimal(1), allowed=False, policy=None,
            limit=Decimal(1), used=Decimal(1), remaining=Decimal(0), resets_at=None,
        )
        try:
            check_entitlement_or_raise(denied)
        except QuotaExceededError as exc:
            print(type(exc).__name__, exc.http_status, "fastapi" in sys.modules, "starlette" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["QuotaExceededError", "402", "False", "False"]
