"""Entitlement API: POST /v1/entitlements/check|consume|release and GET /v1/tenants/{tenant_id}/entitlements,
/cost, /invoice-preview, /events (its recent threshold and grant events) and PUT/GET/DELETE /spend-cap
(tenant routes; cap changes audited); POST/GET
/v1/tenants/{tenant_id}/grants and DELETE /v1/tenants/{tenant_id}/grants/{grant_id} (operator routes, audited).

The caller's tenant comes from the authorizer context; a tenant key may only act for its own tenant.
Bodies are validated (pydantic, through Powertools) before the service runs, so bad input writes
nothing. An exhausted quota answers 402 with the resource, what is left and when it resets; a hard spend
cap 402 `spend_cap_reached` with the cap, the spend and the take's cost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_platform.api.app import (
    ApiTag,
    OpenAPIResponse,
    Path,
    Query,
    Response,
    content_types,
    create_app,
    refusal,
)
from billing_platform.api.callers import actor_of, operator_actor, tenant_caller
from billing_platform.audit.log import AuditEntry, AuditLog
from billing_platform.auth.caller import Caller, require_scope
from billing_platform.container import PerContainer
from billing_platform.costs.schemas import CostOut, InvoicePreviewOut
from billing_platform.entitlements.models import ConsumeRequest
from billing_platform.entitlements.repository import utc_now
from billing_platform.entitlements.schemas import (
    EntitlementOut,
    QuotaRequest,
    ReleaseOut,
    ReleaseRequest,
    TenantEntitlementsOut,
)
from billing_platform.entitlements.service import EntitlementService
from billing_platform.errors import QuotaExceededError
from billing_platform.events.schemas import MAX_RECENT_EVENTS, TenantEventsOut
from billing_platform.grants.models import GRANT_ID_PATTERN
from billing_platform.grants.schemas import CreateGrantRequest, GrantListOut, GrantOut
from billing_platform.grants.service import GrantService
from billing_platform.ids import TENANT_ID_MAX_LENGTH, TENANT_ID_PATTERN
from billing_platform.observability import count, logger, metrics, tracer
from billing_platform.spend.models import SpendCapRequest
from billing_platform.spend.schemas import SpendCapOut

if TYPE_CHECKING:
    from billing_platform.events.service import EventService

app = create_app(title="Billing entitlements")
service = PerContainer(EntitlementService)
grants = PerContainer(lambda: GrantService(tenant_known=service().tenant_known))
audit = PerContainer(AuditLog)


def _event_service() -> EventService:
    # Imported on the first events read: the consume path never reads the event ledger.
    from billing_platform.events.service import EventService

    return EventService()


events = PerContainer(_event_service)


def _cost_service() -> Any:
    # Imported on first use: consumes (the hot path) never load the cost modules at cold start.
    from billing_platform.costs.service import CostService
    from billing_platform.usage.queries import SyncUsageAggregator

    entitlements = service()
    return CostService(entitlements, SyncUsageAggregator(settings=entitlements.context.settings))


costs = PerContainer(_cost_service)

TenantId = Annotated[str, Path(min_length=1, max_length=TENANT_ID_MAX_LENGTH, pattern=TENANT_ID_PATTERN)]
GrantId = Annotated[str, Path(min_length=20, max_length=20, pattern=GRANT_ID_PATTERN)]
EventLimit = Annotated[int, Query(ge=1, le=MAX_RECENT_EVENTS)]
ResourceFilter = Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]

CONSUMED: dict[int, OpenAPIResponse] = {
    200: {"description": "Taken (or, with an idempotency key already used this period, the first take's answer)"},
    402: refusal(
        "Refused: the quota and the live grants are short (quota_exceeded), the resource is not in the plan "
        "(entitlement_not_in_plan) or the subscription is suspended (entitlement_suspended); details name the "
        "resource, what is left and when it resets. Or a hard spend cap would be passed (spend_cap_reached); "
        "details: scope, currency, cap, spend and the take's cost in minor units"
    ),
}


def _entity(body: QuotaRequest, caller: Caller) -> str | None:
    """The entity a request counts at: the one it names, else the one the calling key is bound to."""
    return body.entity_id or (caller.entity_id if caller.tenant_id == body.tenant_id else None)


@app.post(
    "/v1/entitlements/check",
    operation_id="check",
    summary="Check whether a quantity of a resource could be consumed now, without taking it",
    tags=[ApiTag.ENTITLEMENTS],
)
def check(body: QuotaRequest) -> EntitlementOut:
    caller = tenant_caller(app, body.tenant_id)
    result = service().check(body.tenant_id, body.resource_type, body.quantity, entity_id=_entity(body, caller))
    count("EntitlementChecked", allowed=str(result.allowed).lower(), resource_type=body.resource_type)
    return EntitlementOut.model_validate(result.to_dict())


@app.post(
    "/v1/entitlements/consume",
    operation_id="consume",
    summary="Take a quantity of a resource from the tenant's quota (then its grants), atomically",
    tags=[ApiTag.ENTITLEMENTS],
    responses=CONSUMED,
)
@tracer.capture_method(capture_response=False)
def consume(body: QuotaRequest) -> EntitlementOut:
    caller = tenant_caller(app, body.tenant_id)
    request = ConsumeRequest(
        body.tenant_id, body.resource_type, body.quantity, body.idempotency_key, _entity(body, caller)
    )
    result = service().consume_request(request)
    count("EntitlementGranted" if result.allowed else "EntitlementDenied", resource_type=body.resource_type)
    if not result.allowed:
        raise QuotaExceededError(result)
    return EntitlementOut.model_validate(result.to_dict())


@app.post(
    "/v1/entitlements/release",
    operation_id="release",
    summary="Give back quota a consume took (work that failed)",
    tags=[ApiTag.ENTITLEMENTS],
    responses={
        200: {"description": "Given back: `released` is what was"},
        409: refusal("A release for an entity of a tenant with a spend cap (spend_cap_unsupported)"),
    },
)
def release(body: ReleaseRequest) -> ReleaseOut:
    caller = tenant_caller(app, body.tenant_id)
    result = service().release(
        body.tenant_id,
        body.resource_type,
        body.quantity,
        idempotency_key=body.idempotency_key,
        entity_id=_entity(body, caller),
    )
    answer = ReleaseOut.model_validate({**result.to_dict(), "released": result.to_dict()["quantity"]})
    if result.quantity > 0:
        # A release hands quota back to the caller, so it is audited. Consumes are the metered hot
        # path (one request each; the counter is their record) and are not.
        after: dict[str, object] = answer.model_dump(include={"released", "used", "remaining", "resets_at"})
        after["idempotency_key"] = body.idempotency_key
        audit().record(
            AuditEntry.by(actor_of(app, caller), body.tenant_id, "entitlement.release", body.resource_type, after=after)
        )
    logger.info("quota released", extra={"resource_type": body.resource_type, "released": answer.released})
    return answer


@app.get(
    "/v1/tenants/<tenant_id>/entitlements",
    operation_id="getEntitlements",
    summary="Get the tenant's plan, status, features and every quota with its grants",
    tags=[ApiTag.ENTITLEMENTS],
)
def list_entitlements(tenant_id: TenantId) -> TenantEntitlementsOut:
    tenant_caller(app, tenant_id)
    return TenantEntitlementsOut.model_validate(service().entitlements(tenant_id).to_dict())


@app.get(
    "/v1/tenants/<tenant_id>/events",
    summary="List the tenant's recent quota and grant events",
    operation_id="listTenantEvents",
    tags=[ApiTag.EVENTS],
)
def list_events(tenant_id: TenantId, limit: EventLimit = 20) -> TenantEventsOut:
    tenant_caller(app, tenant_id)
    return events().recent(tenant_id, limit=limit)


@app.get(
    "/v1/tenants/<tenant_id>/cost",
    operation_id="getTenantCost",
    summary="Rate this period's usage so far, per resource, priced dimension value and entity",
    tags=[ApiTag.COSTS],
)
def tenant_cost(tenant_id: TenantId) -> CostOut:
    tenant_caller(app, tenant_id)
    return CostOut.of(costs().cost(tenant_id))


@app.get(
    "/v1/tenants/<tenant_id>/invoice-preview",
    operation_id="previewInvoice",
    summary="Preview the invoice this period would close with now: fee, usage lines with tiers, credit, total",
    tags=[ApiTag.COSTS],
)
def invoice_preview(tenant_id: TenantId) -> InvoicePreviewOut:
    tenant_caller(app, tenant_id)
    return InvoicePreviewOut.of(costs().invoice_preview(tenant_id))


def _spend_cap(tenant_id: str) -> SpendCapOut:
    caps = service().spend_caps
    period_end, state = caps.state(tenant_id)
    return SpendCapOut.of(tenant_id, caps.repo.get_cap(tenant_id), period_end, state)


@app.put(
    "/v1/tenants/<tenant_id>/spend-cap",
    operation_id="setSpendCap",
    summary="Set the tenant's spend cap for each period, in the plan's currency (hard or soft)",
    tags=[ApiTag.COSTS],
)
def set_spend_cap(tenant_id: TenantId, body: SpendCapRequest) -> SpendCapOut:
    caller = tenant_caller(app, tenant_id)
    require_scope(caller, "admin")
    cap = service().spend_caps.set_cap(tenant_id, body, actor=actor_of(app, caller))
    audit().record(AuditEntry.by(actor_of(app, caller), tenant_id, "spend_cap.set", "spend-cap", after=cap.to_dict()))
    return _spend_cap(tenant_id)


@app.get(
    "/v1/tenants/<tenant_id>/spend-cap",
    operation_id="getSpendCap",
    summary="Show the tenant's spend cap and this period's spend so far",
    tags=[ApiTag.COSTS],
)
def get_spend_cap(tenant_id: TenantId) -> SpendCapOut:
    tenant_caller(app, tenant_id)
    return _spend_cap(tenant_id)


@app.delete(
    "/v1/tenants/<tenant_id>/spend-cap",
    operation_id="removeSpendCap",
    summary="Remove the tenant's spend cap",
    tags=[ApiTag.COSTS],
)
def remove_spend_cap(tenant_id: TenantId) -> SpendCapOut:
    caller = tenant_caller(app, tenant_id)
    require_scope(caller, "admin")
    service().spend_caps.remove_cap(tenant_id)
    audit().record(AuditEntry.by(actor_of(app, caller), tenant_id, "spend_cap.remove", "spend-cap"))
    return _spend_cap(tenant_id)


@app.post(
    "/v1/tenants/<tenant_id>/grants",
    status_code=201,
    operation_id="createGrant",
    summary="Grant an amount of a resource to a tenant on top of its plan",
    tags=[ApiTag.GRANTS],
    responses={201: {"description": "The grant, active"}},
)
def create_grant(tenant_id: TenantId, body: CreateGrantRequest) -> Response[GrantOut]:
    actor = operator_actor(app)
    grant = grants().create(tenant_id, body, actor=actor)
    count("GrantCreated", resource_type=grant.resource_type)
    return Response(
        status_code=201,
        content_type=content_types.APPLICATION_JSON,
        body=GrantOut.model_validate(grant.to_dict(utc_now())),
    )


@app.get(
    "/v1/tenants/<tenant_id>/grants",
    operation_id="listGrants",
    summary="List the tenant's grants, optionally of one resource",
    tags=[ApiTag.GRANTS],
)
def list_grants(tenant_id: TenantId, resource_type: ResourceFilter = None) -> GrantListOut:
    operator_actor(app)
    now = utc_now()
    return GrantListOut.model_validate(
        {"tenant_id": tenant_id, "grants": [g.to_dict(now) for g in grants().list(tenant_id, resource_type)]}
    )


@app.delete(
    "/v1/tenants/<tenant_id>/grants/<grant_id>",
    operation_id="voidGrant",
    summary="Void a grant: what it still holds stops counting",
    tags=[ApiTag.GRANTS],
)
def void_grant(tenant_id: TenantId, grant_id: GrantId) -> GrantOut:
    actor = operator_actor(app)
    return GrantOut.model_validate(grants().void(tenant_id, grant_id, actor=actor).to_dict(utc_now()))


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
