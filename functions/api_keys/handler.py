"""Operator API for tenant API keys and the audit log:
POST/GET /v1/tenants/{tenant_id}/api-keys, DELETE /v1/tenants/{tenant_id}/api-keys/{key_id},
GET /v1/tenants/{tenant_id}/audit."""

from typing import Annotated, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_platform.api.app import ApiTag, Path, Query, Response, content_types, create_app
from billing_platform.api.callers import operator_actor
from billing_platform.audit.log import AuditLog
from billing_platform.audit.schemas import AuditPageOut
from billing_platform.auth.schemas import ApiKeyOut, ApiKeyPageOut, CreateApiKey, CreatedApiKeyOut
from billing_platform.auth.service import ApiKeyService
from billing_platform.container import PerContainer
from billing_platform.ids import TENANT_ID_MAX_LENGTH, TENANT_ID_PATTERN
from billing_platform.observability import logger, metrics, tracer

app = create_app(title="Billing API keys and audit")
keys = PerContainer(ApiKeyService)
audit = PerContainer(AuditLog)

# The tenant id format of every other route: a key for a tenant id they would refuse could never be used.
TenantId = Annotated[str, Path(min_length=1, max_length=TENANT_ID_MAX_LENGTH, pattern=TENANT_ID_PATTERN)]
KeyId = Annotated[str, Path(min_length=20, max_length=20, pattern=r"^key_[0-9a-f]{16}$")]
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=2048)]


@app.post(
    "/v1/tenants/<tenant_id>/api-keys",
    status_code=201,
    operation_id="createApiKey",
    summary="Create an API key for a tenant (its secret is shown once)",
    tags=[ApiTag.API_KEYS],
    responses={201: {"description": "The key, with its secret"}},
)
@tracer.capture_method(capture_response=False)
def create_key(tenant_id: TenantId, body: CreateApiKey) -> Response[CreatedApiKeyOut]:
    actor = operator_actor(app)
    created = keys().create(
        tenant_id,
        name=body.name,
        description=body.description,
        expires_at=body.expires_at,
        scope=body.scope,
        actor=actor,
    )
    metrics.add_metric(name="ApiKeyCreated", unit="Count", value=1)
    logger.info("api key created", extra={"tenant_id": tenant_id, "key_id": created.key.key_id})
    # The only response that ever carries the key: never cached anywhere on the way.
    return Response(
        status_code=201,
        content_type=content_types.APPLICATION_JSON,
        headers={"Cache-Control": "no-store"},
        body=CreatedApiKeyOut.model_validate({**created.key.to_dict(), "secret": created.secret}),
    )


@app.get(
    "/v1/tenants/<tenant_id>/api-keys",
    operation_id="listApiKeys",
    summary="List a tenant's API keys, a page at a time",
    tags=[ApiTag.API_KEYS],
)
def list_keys(tenant_id: TenantId, limit: Limit = 50, cursor: Cursor = None) -> ApiKeyPageOut:
    operator_actor(app)
    page = keys().list(tenant_id, limit=limit, cursor=cursor)
    return ApiKeyPageOut.model_validate(
        {"items": [key.to_dict() for key in page.keys], "next_cursor": page.next_cursor}
    )


@app.delete(
    "/v1/tenants/<tenant_id>/api-keys/<key_id>",
    operation_id="revokeApiKey",
    summary="Revoke an API key",
    tags=[ApiTag.API_KEYS],
)
def revoke_key(tenant_id: TenantId, key_id: KeyId) -> ApiKeyOut:
    actor = operator_actor(app)
    key = keys().revoke(tenant_id, key_id, actor=actor)
    logger.info("api key revoked", extra={"tenant_id": tenant_id, "key_id": key_id})
    return ApiKeyOut.model_validate(key.to_dict())


@app.get(
    "/v1/tenants/<tenant_id>/audit",
    operation_id="listAuditEntries",
    summary="List a tenant's audit log, newest first, a page at a time",
    tags=[ApiTag.AUDIT],
)
def list_audit(tenant_id: TenantId, limit: Limit = 50, cursor: Cursor = None) -> AuditPageOut:
    operator_actor(app)
    page = audit().page(tenant_id, limit=limit, cursor=cursor)
    return AuditPageOut.model_validate(
        {"items": [entry.to_dict() for entry in page.entries], "next_cursor": page.next_cursor}
    )


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
