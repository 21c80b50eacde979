"""Tenants' webhook endpoints, audited, the signing secret in the 201 only. Operators:
POST/GET /v1/tenants/{tenant_id}/webhook-endpoints, DELETE /v1/tenants/{tenant_id}/webhook-endpoints/{endpoint_id};
a tenant's admin-scoped key, for its own tenant: POST/GET /v1/webhook-endpoints,
DELETE /v1/webhook-endpoints/{endpoint_id}."""

from typing import Annotated, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_platform.api.app import ApiTag, Path, Response, content_types, create_app
from billing_platform.api.callers import actor_of, admin_caller, operator_actor
from billing_platform.auth.caller import Actor
from billing_platform.container import PerContainer
from billing_platform.ids import TENANT_ID_MAX_LENGTH, TENANT_ID_PATTERN
from billing_platform.observability import logger, metrics, tracer
from billing_platform.tenant_webhooks.schemas import (
    CreatedWebhookEndpointOut,
    CreateWebhookEndpoint,
    WebhookEndpointListOut,
    WebhookEndpointOut,
)
from billing_platform.tenant_webhooks.service import WebhookEndpointService

app = create_app(title="Billing webhook endpoints")
endpoints = PerContainer(WebhookEndpointService)

TenantId = Annotated[str, Path(min_length=1, max_length=TENANT_ID_MAX_LENGTH, pattern=TENANT_ID_PATTERN)]
EndpointId = Annotated[str, Path(min_length=19, max_length=19, pattern=r"^we_[0-9a-f]{16}$")]


@app.post(
    "/v1/tenants/<tenant_id>/webhook-endpoints",
    status_code=201,
    operation_id="createWebhookEndpoint",
    summary="Register a webhook endpoint for a tenant (operator); its signing secret is shown once",
    tags=[ApiTag.WEBHOOK_ENDPOINTS],
    responses={201: {"description": "The endpoint, with its signing secret"}},
)
@tracer.capture_method(capture_response=False)
def create_endpoint(tenant_id: TenantId, body: CreateWebhookEndpoint) -> Response[CreatedWebhookEndpointOut]:
    return _create(tenant_id, body, operator_actor(app))


@app.post(
    "/v1/webhook-endpoints",
    status_code=201,
    operation_id="createOwnWebhookEndpoint",
    summary="Register a webhook endpoint for the calling admin key's tenant; its signing secret is shown once",
    tags=[ApiTag.WEBHOOK_ENDPOINTS],
    responses={201: {"description": "The endpoint, with its signing secret"}},
)
@tracer.capture_method(capture_response=False)
def create_own_endpoint(body: CreateWebhookEndpoint) -> Response[CreatedWebhookEndpointOut]:
    caller = admin_caller(app)
    return _create(str(caller.tenant_id), body, actor_of(app, caller))


def _create(tenant_id: str, body: CreateWebhookEndpoint, actor: Actor) -> Response[CreatedWebhookEndpointOut]:
    created = endpoints().create(
        tenant_id,
        url=body.url,
        enabled_events=body.enabled_events,
        description=body.description,
        actor=actor,
    )
    metrics.add_metric(name="WebhookEndpointCreated", unit="Count", value=1)
    logger.info("webhook endpoint created", extra={"tenant_id": tenant_id, "endpoint_id": created.endpoint.endpoint_id})
    # The only response that ever carries the signing secret: never cached on the way.
    return Response(
        status_code=201,
        content_type=content_types.APPLICATION_JSON,
        headers={"Cache-Control": "no-store"},
        body=CreatedWebhookEndpointOut.model_validate({**created.endpoint.to_dict(), "secret": created.secret}),
    )


@app.get(
    "/v1/tenants/<tenant_id>/webhook-endpoints",
    operation_id="listWebhookEndpoints",
    summary="List a tenant's webhook endpoints (operator)",
    tags=[ApiTag.WEBHOOK_ENDPOINTS],
)
def list_endpoints(tenant_id: TenantId) -> WebhookEndpointListOut:
    operator_actor(app)
    return WebhookEndpointListOut.model_validate({"items": [e.to_dict() for e in endpoints().endpoints(tenant_id)]})


@app.get(
    "/v1/webhook-endpoints",
    operation_id="listOwnWebhookEndpoints",
    summary="List the webhook endpoints of the calling admin key's tenant",
    tags=[ApiTag.WEBHOOK_ENDPOINTS],
)
def list_own_endpoints() -> WebhookEndpointListOut:
    tenant_id = str(admin_caller(app).tenant_id)
    return WebhookEndpointListOut.model_validate({"items": [e.to_dict() for e in endpoints().endpoints(tenant_id)]})


@app.delete(
    "/v1/tenants/<tenant_id>/webhook-endpoints/<endpoint_id>",
    operation_id="deleteWebhookEndpoint",
    summary="Delete a tenant's webhook endpoint (operator)",
    tags=[ApiTag.WEBHOOK_ENDPOINTS],
)
def delete_endpoint(tenant_id: TenantId, endpoint_id: EndpointId) -> WebhookEndpointOut:
    return _delete(tenant_id, endpoint_id, operator_actor(app))


@app.delete(
    "/v1/webhook-endpoints/<endpoint_id>",
    operation_id="deleteOwnWebhookEndpoint",
    summary="Delete a webhook endpoint of the calling admin key's tenant",
    tags=[ApiTag.WEBHOOK_ENDPOINTS],
)
def delete_own_endpoint(endpoint_id: EndpointId) -> WebhookEndpointOut:
    caller = admin_caller(app)
    return _delete(str(caller.tenant_id), endpoint_id, actor_of(app, caller))


def _delete(tenant_id: str, endpoint_id: str, actor: Actor) -> WebhookEndpointOut:
    deleted = endpoints().delete(tenant_id, endpoint_id, actor=actor)
    logger.info("webhook endpoint deleted", extra={"tenant_id": tenant_id, "endpoint_id": endpoint_id})
    return WebhookEndpointOut.model_validate(deleted.to_dict())


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
