"""Operator API for tenant credentials and the audit log:
POST/GET /v1/tenants/{tenant_id}/api-keys, DELETE /v1/tenants/{tenant_id}/api-keys/{key_id},
POST/GET /v1/tenants/{tenant_id}/portal-tokens, DELETE /v1/tenants/{tenant_id}/portal-tokens/{token_id}
(and /v1/portal-tokens for a tenant's admin key, on its own tenant),
GET /v1/tenants/{tenant_id}/audit."""

from datetime import timedelta
from typing import Annotated, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_platform.api.app import ApiTag, Path, Query, Response, content_types, create_app
from billing_platform.api.callers import actor_of, current_caller, operator_actor
from billing_platform.audit.log import AuditLog
from billing_platform.audit.schemas import AuditPageOut
from billing_platform.auth.caller import require_portal_minter
from billing_platform.auth.schemas import ApiKeyOut, ApiKeyPageOut, CreateApiKey, CreatedApiKeyOut
from billing_platform.auth.service import ApiKeyService
from billing_platform.container import PerContainer
from billing_platform.dynamodb import utc_now
from billing_platform.errors import TenantAccessDenied
from billing_platform.ids import TENANT_ID_MAX_LENGTH, TENANT_ID_PATTERN
from billing_platform.observability import logger, metrics, tracer
from billing_platform.portal.models import TOKEN_ID_PATTERN, MintPortalToken
from billing_platform.portal.schemas import (
    CreatedPortalTokenOut,
    MintPortalTokenIn,
    PortalTokenOut,
    PortalTokenPageOut,
)
from billing_platform.portal.service import PortalTokenService

app = create_app(title="Billing API keys and audit")
keys = PerContainer(ApiKeyService)
audit = PerContainer(AuditLog)
portal_tokens = PerContainer(PortalTokenService)

# The tenant id format of every other route: a key for a tenant id they would refuse could never be used.
TenantId = Annotated[str, Path(min_length=1, max_length=TENANT_ID_MAX_LENGTH, pattern=TENANT_ID_PATTERN)]
KeyId = Annotated[str, Path(min_length=20, max_length=20, pattern=r"^key_[0-9a-f]{16}$")]
TokenId = Annotated[str, Path(min_length=20, max_length=20, pattern=TOKEN_ID_PATTERN)]
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


def _mint(tenant_id: str, body: MintPortalTokenIn) -> Response[CreatedPortalTokenOut]:
    caller = current_caller(app)
    require_portal_minter(caller, tenant_id)
    request = MintPortalToken(
        tenant_id=tenant_id,
        ttl=timedelta(seconds=body.ttl_seconds),
        entity_id=body.entity_id,
        label=body.label,
        allowed_origins=tuple(body.allowed_origins),
    )
    created = portal_tokens().mint(request, actor=actor_of(app, caller))
    metrics.add_metric(name="PortalTokenMinted", unit="Count", value=1)
    logger.info("portal token minted", extra={"tenant_id": tenant_id, "token_id": created.token.token_id})
    out = PortalTokenOut.of(created.token, created.token.created_at)
    # The only response that ever carries the token: never cached anywhere on the way.
    return Response(
        status_code=201,
        content_type=content_types.APPLICATION_JSON,
        headers={"Cache-Control": "no-store"},
        body=CreatedPortalTokenOut.model_validate({**out.model_dump(), "token": created.secret}),
    )


def _list(tenant_id: str, limit: int, cursor: str | None) -> PortalTokenPageOut:
    require_portal_minter(current_caller(app), tenant_id)
    page = portal_tokens().list(tenant_id, limit=limit, cursor=cursor)
    now = utc_now()
    return PortalTokenPageOut(items=[PortalTokenOut.of(t, now) for t in page.tokens], next_cursor=page.next_cursor)


def _revoke(tenant_id: str, token_id: str) -> PortalTokenOut:
    caller = current_caller(app)
    require_portal_minter(caller, tenant_id)
    token = portal_tokens().revoke(tenant_id, token_id, actor=actor_of(app, caller))
    logger.info("portal token revoked", extra={"tenant_id": tenant_id, "token_id": token_id})
    return PortalTokenOut.of(token, utc_now())


def _own_tenant() -> str:
    """The tenant of the admin key calling a `/v1/portal-tokens` route."""
    caller = current_caller(app)
    if caller.tenant_id is None:
        raise TenantAccessDenied("this route is for a tenant's admin API key; operators name the tenant")
    return caller.tenant_id


@app.post(
    "/v1/tenants/<tenant_id>/portal-tokens",
    status_code=201,
    summary="Mint a read-only portal token for one tenant",
    operation_id="mintPortalToken",
    tags=[ApiTag.PORTAL],
)
@tracer.capture_method(capture_response=False)
def mint_portal_token(tenant_id: TenantId, body: MintPortalTokenIn) -> Response[CreatedPortalTokenOut]:
    return _mint(tenant_id, body)


@app.get(
    "/v1/tenants/<tenant_id>/portal-tokens",
    summary="List a tenant's portal tokens (metadata only)",
    operation_id="listPortalTokens",
    tags=[ApiTag.PORTAL],
)
def list_portal_tokens(tenant_id: TenantId, limit: Limit = 50, cursor: Cursor = None) -> PortalTokenPageOut:
    return _list(tenant_id, limit, cursor)


@app.delete(
    "/v1/tenants/<tenant_id>/portal-tokens/<token_id>",
    summary="Revoke a portal token",
    operation_id="revokePortalToken",
    tags=[ApiTag.PORTAL],
)
def revoke_portal_token(tenant_id: TenantId, token_id: TokenId) -> PortalTokenOut:
    return _revoke(tenant_id, token_id)


@app.post(
    "/v1/portal-tokens",
    status_code=201,
    summary="Mint a read-only portal token for the admin key's own tenant",
    operation_id="mintOwnPortalToken",
    tags=[ApiTag.PORTAL],
)
@tracer.capture_method(capture_response=False)
def mint_own_portal_token(body: MintPortalTokenIn) -> Response[CreatedPortalTokenOut]:
    return _mint(_own_tenant(), body)


@app.get(
    "/v1/portal-tokens",
    summary="List the admin key's own tenant's portal tokens (metadata only)",
    operation_id="listOwnPortalTokens",
    tags=[ApiTag.PORTAL],
)
def list_own_portal_tokens(limit: Limit = 50, cursor: Cursor = None) -> PortalTokenPageOut:
    return _list(_own_tenant(), limit, cursor)


@app.delete(
    "/v1/portal-tokens/<token_id>",
    summary="Revoke a portal token of the admin key's own tenant",
    operation_id="revokeOwnPortalToken",
    tags=[ApiTag.PORTAL],
)
def revoke_own_portal_token(token_id: TokenId) -> PortalTokenOut:
    return _revoke(_own_tenant(), token_id)


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
