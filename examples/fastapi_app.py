"""The design document's "Application Setup", runnable: an asyncio (FastAPI) service that imports the
billing library and awaits it.

    pip install "aws-saas-billing[fastapi]" uvicorn
    # against `make dev`: paste the `export ...` line its banner prints (region, local credentials, the
    # DynamoDB Local and moto endpoints, USAGE_QUEUE_URL; the table names default to the local ones)
    export AWS_DEFAULT_REGION=us-east-1 ... USAGE_QUEUE_URL=http://127.0.0.1:<moto port>/123456789012/usage-records
    uvicorn examples.fastapi_app:create_app --factory

The usage tracker is started at startup and stopped (flushed) at shutdown; entitlements are checked
with the `get_entitlement_enforcer` dependency and with `@require_entitlement`; a refusal is FastAPI's
402 with the platform's error body as `detail`. Tenant ids are the application's UUIDs.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any
from uuid import UUID

from fastapi import Depends, FastAPI

from billing_platform import (
    BillingProvider,
    EntitlementEnforcer,
    MockBillingProvider,
    StripeBillingProvider,
    UsageAggregator,
    UsageTracker,
    check_entitlement_or_raise,
    get_entitlement_enforcer,
    require_entitlement,
)


def create_app() -> FastAPI:
    """Build the service from the environment (the library's settings: table names, queue URL,
    `USAGE_TRACKER_BATCH_SIZE`, `USAGE_TRACKER_FLUSH_INTERVAL`, `STRIPE_SECRET_KEY`)."""
    billing_provider: BillingProvider
    if os.getenv("ENVIRONMENT") == "production":
        billing_provider = StripeBillingProvider(api_key=os.getenv("STRIPE_SECRET_KEY"))
    else:
        billing_provider = MockBillingProvider()
    usage_tracker = UsageTracker(
        batch_size=int(os.getenv("USAGE_TRACKER_BATCH_SIZE", "100")),
        flush_interval_seconds=float(os.getenv("USAGE_TRACKER_FLUSH_INTERVAL", "30.0")),
    )
    aggregator = UsageAggregator()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        usage_tracker.start()
        try:
            yield
        finally:
            await usage_tracker.stop()  # flushes what is still buffered

    app = FastAPI(title="Billing library example", lifespan=lifespan)
    app.state.billing_provider = billing_provider
    app.state.usage_tracker = usage_tracker

    @app.post("/customers")
    async def create_customer(tenant_id: UUID, email: str) -> dict[str, Any]:
        customer_id = await billing_provider.create_customer(tenant_id=tenant_id, email=email)
        customer = await billing_provider.get_customer(customer_id)
        return {"customer_id": customer_id, "email": customer["email"]}

    @app.post("/workflows/{workflow_id}/execute")
    async def execute_workflow(
        workflow_id: UUID,
        tenant_id: UUID,
        enforcer: EntitlementEnforcer = Depends(get_entitlement_enforcer),
    ) -> dict[str, Any]:
        check = await enforcer.check_and_record(tenant_id=tenant_id, resource_type="executions", quantity=Decimal("1"))
        check_entitlement_or_raise(check)  # 402 with the platform's body when the quota is spent
        await usage_tracker.track_execution(tenant_id=tenant_id, workflow_id=workflow_id)
        return {"workflow_id": str(workflow_id), "remaining": str(check.remaining)}

    @app.post("/llm")
    @require_entitlement("tokens", quantity=Decimal("1000"))
    async def process_with_llm(tenant_id: UUID, prompt: str) -> dict[str, Any]:
        await usage_tracker.track_tokens(tenant_id=tenant_id, tokens=1000, model="example-model")
        return {"answer": prompt[::-1]}

    @app.get("/usage/{tenant_id}")
    async def usage(tenant_id: UUID, resource_type: str, days: int = 7) -> dict[str, Any]:
        trend = await aggregator.get_usage_trends(tenant_id=tenant_id, resource_type=resource_type, days=days)
        return trend.to_dict()

    return app
