"""Entitlement API: POST /v1/entitlements/check|consume|release and GET /v1/tenants/{tenant_id}/entitlements,
/cost and /invoice-preview (tenant routes); POST/GET /v1/tenants/{tenant_id}/grants and
DELETE /v1/tenants/{tenant_id}/grants/{grant_id} (operator routes, audited).

The caller's tenant comes from the authorizer context; a tenant key may only act for its own tenant.
Bodies are validated (pydantic, through Powertools) before the service runs, so bad input writes
nothing. An exhausted quota answers 402 with the resource, what is left and when it resets.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from billing_platform.api.app import Path, Query, Response, content_types, create_app
from billing_platform.api.callers import actor_of, operator_actor, tenant_caller
from billing_platform.audit.log import AuditEntry, AuditLog
from billing_platform.container import PerContainer
from billing_platform.costs.schemas import CostOut, InvoicePreviewOut
from billing_platform.entitlements.models import SUBSCRIBED, ConsumeRequest
from billing_platform.entitlements.repository import utc_now
from billing_platform.entitlements.service import EntitlementService
from billing_platform.errors import QuotaExceededError
from billing_platform.grants.models import GRANT_ID_PATTERN, CreateGrantRequest
from billing_platform.grants.service import GrantService
from billing_platform.ids import TENANT_ID_MAX_LENGTH, TENANT_ID_PATTERN
from billing_platform.observability import count, logger, metrics, tracer
from billing_platform.quantities import MAX_QUANTITY, QUANTITY_PLACES

app = create_app(title="Billing entitlements")
service = PerContainer(EntitlementService)
grants = PerContainer(lambda: GrantService(tenant_known=service().tenant_known))
audit = PerContainer(AuditLog)


def _cost_service() -> Any:
    # Imported on first use: consumes (the hot path) never load the cost modules at cold start.
    from billing_platform.costs.service import CostService

    return CostService(service())


costs = PerContainer(_cost_service)

TenantId = Annotated[str, Path(min_length=1, max_length=TENANT_ID_MAX_LENGTH, pattern=TENANT_ID_PATTERN)]
GrantId = Annotated[str, Path(min_length=20, max_length=20, pattern=GRANT_ID_PATTERN)]
ResourceFilter = Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
Quantity = Annotated[
    Decimal,
    Field(gt=0, le=MAX_QUANTITY, decimal_places=QUANTITY_PLACES, allow_inf_nan=False),
]


class QuotaRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    tenant_id: str = Field(min_length=1, max_length=TENANT_ID_MAX_LENGTH, pattern=TENANT_ID_PATTERN)
    resource_type: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    quantity: Quantity = Decimal(1)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")


class TenantEntitlementsOut(BaseModel):
    """`GET /v1/tenants/{tenant_id}/entitlements` (billing_platform.entitlements.views.TenantEntitlements)."""

    tenant_id: str
    plan_id: str = Field(description="The plan in force: the subscription's, or the catalog default (free)")
    status: str = Field(
        description="active, trialing, past_due (within the plan's grace), suspended (unpaid, paused or past "
        "due beyond grace: quotas deny, features off) or canceled (the subscription ended: default plan)"
    )
    subscribed: bool = Field(description=SUBSCRIBED)
    period_start: str = Field(description="ISO 8601 UTC")
    period_end: str = Field(description="ISO 8601 UTC")
    features: dict[str, bool]
    quotas: list[dict[str, Any]] = Field(description="Each quota of the plan, with its live grants")


class ReleaseRequest(QuotaRequest):
    # With an idempotency key the release gives back exactly what that consume took.
    quantity: Quantity | None = None  # type: ignore[assignment]


@app.post("/v1/entitlements/check")
def check(body: QuotaRequest) -> dict[str, object]:
    tenant_caller(app, body.tenant_id)
    result = service().check(body.tenant_id, body.resource_type, body.quantity)
    count("EntitlementChecked", allowed=str(result.allowed).lower(), resource_type=body.resource_type)
    return result.to_dict()


@app.post("/v1/entitlements/consume")
@tracer.capture_method(capture_response=False)
def consume(body: QuotaRequest) -> dict[str, object]:
    tenant_caller(app, body.tenant_id)
    request = ConsumeRequest(body.tenant_id, body.resource_type, body.quantity, body.idempotency_key)
    result = service().consume_request(request)
    count("EntitlementGranted" if result.allowed else "EntitlementDenied", resource_type=body.resource_type)
    if not result.allowed:
        raise QuotaExceededError(result)
    return result.to_dict()


@app.post("/v1/entitlements/release")
def release(body: ReleaseRequest) -> dict[str, object]:
    caller = tenant_caller(app, body.tenant_id)
    result = service().release(body.tenant_id, body.resource_type, body.quantity, idempotency_key=body.idempotency_key)
    answer = {**result.to_dict(), "released": result.to_dict()["quantity"]}
    if result.quantity > 0:
        # A release hands quota back to the caller, so it is audited. Consumes are the metered hot
        # path (one request each; the counter is their record) and are not.
        after = {k: answer[k] for k in ("released", "used", "remaining", "resets_at")}
        after["idempotency_key"] = body.idempotency_key
        audit().record(
            AuditEntry.by(actor_of(app, caller), body.tenant_id, "entitlement.release", body.resource_type, after=after)
        )
    logger.info("quota released", extra={"resource_type": body.resource_type, "released": answer["released"]})
    return answer


@app.get("/v1/tenants/<tenant_id>/entitlements")
def list_entitlements(tenant_id: TenantId) -> TenantEntitlementsOut:
    tenant_caller(app, tenant_id)
    return TenantEntitlementsOut.model_validate(service().entitlements(tenant_id).to_dict())


@app.get(
    "/v1/tenants/<tenant_id>/cost",
    operation_id="getTenantCost",
    summary="Rate this period's usage so far, per resource and priced dimension value",
    tags=["Costs"],
)
def tenant_cost(tenant_id: TenantId) -> CostOut:
    tenant_caller(app, tenant_id)
    return CostOut.of(costs().cost(tenant_id))


@app.get(
    "/v1/tenants/<tenant_id>/invoice-preview",
    operation_id="previewInvoice",
    summary="Preview the invoice this period would close with now: fee, usage lines with tiers, credit, total",
    tags=["Costs"],
)
def invoice_preview(tenant_id: TenantId) -> InvoicePreviewOut:
    tenant_caller(app, tenant_id)
    return InvoicePreviewOut.of(costs().invoice_preview(tenant_id))


@app.post("/v1/tenants/<tenant_id>/grants", status_code=201)
def create_grant(tenant_id: TenantId, body: CreateGrantRequest) -> Response[dict[str, object]]:
    actor = operator_actor(app)
    grant = grants().create(tenant_id, body, actor=actor)
    count("GrantCreated", resource_type=grant.resource_type)
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=grant.to_dict(utc_now()))


@app.get("/v1/tenants/<tenant_id>/grants")
def list_grants(tenant_id: TenantId, resource_type: ResourceFilter = None) -> dict[str, object]:
    operator_actor(app)
    now = utc_now()
    return {"tenant_id": tenant_id, "grants": [g.to_dict(now) for g in grants().list(tenant_id, resource_type)]}


@app.delete("/v1/tenants/<tenant_id>/grants/<grant_id>")
def void_grant(tenant_id: TenantId, grant_id: GrantId) -> dict[str, object]:
    actor = operator_actor(app)
    return grants().void(tenant_id, grant_id, actor=actor).to_dict(utc_now())


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
