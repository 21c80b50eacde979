"""Operator reads for the console: GET /v1/ops/freshness (how far behind each pipeline stage is, with the
alarms' thresholds; `?tenant_id=` adds the tenant's last hours reported to Stripe) and GET /v1/tenants (the
tenant directory, each tenant with its plan and status)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_platform.api.app import ApiTag, Query, create_app
from billing_platform.api.callers import operator_actor
from billing_platform.container import PerContainer
from billing_platform.entitlements.service import EntitlementService
from billing_platform.freshness.schemas import FreshnessOut
from billing_platform.freshness.service import FreshnessService
from billing_platform.ids import TENANT_ID_MAX_LENGTH, TENANT_ID_PATTERN
from billing_platform.observability import logger, metrics, tracer
from billing_platform.tenants.schemas import TenantPageOut
from billing_platform.tenants.service import TenantDirectory

app = create_app(title="Billing operations")
freshness = PerContainer(FreshnessService)
directory = PerContainer(lambda: TenantDirectory(EntitlementService().plan_for))

TenantFilter = Annotated[str | None, Query(min_length=1, max_length=TENANT_ID_MAX_LENGTH, pattern=TENANT_ID_PATTERN)]
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=2048)]


@app.get(
    "/v1/ops/freshness",
    summary="Read how far behind each stage of the usage pipeline is",
    operation_id="getFreshness",
    tags=[ApiTag.OPERATIONS],
)
def get_freshness(tenant_id: TenantFilter = None) -> FreshnessOut:
    operator_actor(app)
    return freshness().report(tenant_id)


@app.get(
    "/v1/tenants",
    summary="List tenants with their plan and status",
    operation_id="listTenants",
    tags=[ApiTag.OPERATIONS],
)
def list_tenants(limit: Limit = 25, cursor: Cursor = None) -> TenantPageOut:
    operator_actor(app)
    return directory().page(limit=limit, cursor=cursor)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
