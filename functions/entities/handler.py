"""A tenant's entities, their limits and key bindings. Operators: /v1/tenants/{tenant_id}/entities...,
PUT /v1/tenants/{tenant_id}/api-keys/{key_id}/entity. A tenant's admin-scoped key, for its own tenant:
/v1/entities..., PUT /v1/api-keys/{key_id}/entity. Every change is audited in the same transaction."""

from typing import Annotated, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_platform.api.app import ApiTag, Path, Query, create_app
from billing_platform.api.callers import actor_of, admin_caller, current_caller, operator_actor
from billing_platform.auth.caller import Actor
from billing_platform.auth.schemas import ApiKeyOut
from billing_platform.container import PerContainer
from billing_platform.entities.models import ENTITY_ID_MAX_LENGTH, ENTITY_ID_PATTERN
from billing_platform.entities.schemas import (
    BindKeyIn,
    CreateEntityIn,
    EntityLimitListOut,
    EntityLimitOut,
    EntityOut,
    EntityPageOut,
    LimitIn,
    UpdateEntityIn,
)
from billing_platform.entities.service import EntityService
from billing_platform.entitlements.service import EntitlementService
from billing_platform.ids import TENANT_ID_MAX_LENGTH, TENANT_ID_PATTERN
from billing_platform.observability import logger, metrics, tracer

app = create_app(title="Billing entities")
entities = PerContainer(lambda: EntityService(plans=EntitlementService()))

TenantId = Annotated[str, Path(min_length=1, max_length=TENANT_ID_MAX_LENGTH, pattern=TENANT_ID_PATTERN)]
EntityId = Annotated[str, Path(min_length=1, max_length=ENTITY_ID_MAX_LENGTH, pattern=ENTITY_ID_PATTERN)]
ResourceType = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
KeyId = Annotated[str, Path(min_length=20, max_length=20, pattern=r"^key_[0-9a-f]{16}$")]
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=2048)]
TAGS: list[str] = [ApiTag.ENTITIES]


def _own() -> tuple[str, Actor]:
    """The calling admin key's tenant and the actor it is audited as."""
    caller = admin_caller(app)
    return str(caller.tenant_id), actor_of(app, caller)


def _readable(entity_id: str) -> str:
    """The tenant whose entity `entity_id` the caller may read: an admin key's own tenant, or the tenant of
    an entity's portal token when `entity_id` is its entity."""
    caller = current_caller(app)
    if caller.is_portal:
        caller.require_entity(entity_id)
        return str(caller.tenant_id)
    return _own()[0]


# --- entities ----------------------------------------------------------------------------------


def _create(tenant_id: str, body: CreateEntityIn, actor: Actor) -> EntityOut:
    entity = entities().create(
        tenant_id, body.id, actor=actor, parent_id=body.parent_id, kind=body.kind, name=body.name
    )
    metrics.add_metric(name="EntityCreated", unit="Count", value=1)
    logger.info("entity created", extra={"tenant_id": tenant_id, "entity_id": body.id})
    return EntityOut.model_validate(entity.to_dict())


@app.post(
    "/v1/tenants/<tenant_id>/entities",
    status_code=201,
    operation_id="createEntity",
    summary="Create an entity under a tenant (operator)",
    tags=TAGS,
)
def create_entity(tenant_id: TenantId, body: CreateEntityIn) -> EntityOut:
    return _create(tenant_id, body, operator_actor(app))


@app.post(
    "/v1/entities",
    status_code=201,
    operation_id="createOwnEntity",
    summary="Create an entity under the calling admin key's tenant",
    tags=TAGS,
)
def create_own_entity(body: CreateEntityIn) -> EntityOut:
    tenant_id, actor = _own()
    return _create(tenant_id, body, actor)


def _page(tenant_id: str, limit: int, cursor: str | None) -> EntityPageOut:
    items, next_cursor = entities().list(tenant_id, limit=limit, cursor=cursor)
    return EntityPageOut.model_validate({"items": [e.to_dict() for e in items], "next_cursor": next_cursor})


@app.get(
    "/v1/tenants/<tenant_id>/entities",
    operation_id="listEntities",
    summary="List a tenant's entities (operator)",
    tags=TAGS,
)
def list_entities(tenant_id: TenantId, limit: Limit = 50, cursor: Cursor = None) -> EntityPageOut:
    operator_actor(app)
    return _page(tenant_id, limit, cursor)


@app.get(
    "/v1/entities",
    operation_id="listOwnEntities",
    summary="List the entities of the calling admin key's tenant",
    tags=TAGS,
)
def list_own_entities(limit: Limit = 50, cursor: Cursor = None) -> EntityPageOut:
    tenant_id, _actor = _own()
    return _page(tenant_id, limit, cursor)


@app.get(
    "/v1/tenants/<tenant_id>/entities/<entity_id>",
    operation_id="getEntity",
    summary="Read one entity of a tenant (operator)",
    tags=TAGS,
)
def get_entity(tenant_id: TenantId, entity_id: EntityId) -> EntityOut:
    operator_actor(app)
    return EntityOut.model_validate(entities().get(tenant_id, entity_id).to_dict())


@app.get(
    "/v1/entities/<entity_id>",
    operation_id="getOwnEntity",
    summary="Read one entity of the calling admin key's tenant (or an entity portal token's own entity)",
    tags=TAGS,
)
def get_own_entity(entity_id: EntityId) -> EntityOut:
    tenant_id = _readable(entity_id)
    return EntityOut.model_validate(entities().get(tenant_id, entity_id).to_dict())


@app.patch(
    "/v1/tenants/<tenant_id>/entities/<entity_id>",
    operation_id="updateEntity",
    summary="Change an entity's kind and name (operator)",
    tags=TAGS,
)
def update_entity(tenant_id: TenantId, entity_id: EntityId, body: UpdateEntityIn) -> EntityOut:
    changed = entities().update(tenant_id, entity_id, actor=operator_actor(app), kind=body.kind, name=body.name)
    return EntityOut.model_validate(changed.to_dict())


@app.patch(
    "/v1/entities/<entity_id>",
    operation_id="updateOwnEntity",
    summary="Change the kind and name of an entity of the calling admin key's tenant",
    tags=TAGS,
)
def update_own_entity(entity_id: EntityId, body: UpdateEntityIn) -> EntityOut:
    tenant_id, actor = _own()
    changed = entities().update(tenant_id, entity_id, actor=actor, kind=body.kind, name=body.name)
    return EntityOut.model_validate(changed.to_dict())


@app.delete(
    "/v1/tenants/<tenant_id>/entities/<entity_id>",
    operation_id="deleteEntity",
    summary="Remove an entity with no children or bound keys, and its limits (operator)",
    tags=TAGS,
)
def delete_entity(tenant_id: TenantId, entity_id: EntityId) -> EntityOut:
    deleted = entities().delete(tenant_id, entity_id, actor=operator_actor(app))
    return EntityOut.model_validate(deleted.to_dict())


@app.delete(
    "/v1/entities/<entity_id>",
    operation_id="deleteOwnEntity",
    summary="Remove an entity of the calling admin key's tenant, and its limits",
    tags=TAGS,
)
def delete_own_entity(entity_id: EntityId) -> EntityOut:
    tenant_id, actor = _own()
    return EntityOut.model_validate(entities().delete(tenant_id, entity_id, actor=actor).to_dict())


# --- limits ------------------------------------------------------------------------------------


@app.put(
    "/v1/tenants/<tenant_id>/entities/<entity_id>/limits/<resource_type>",
    operation_id="setEntityLimit",
    summary="Set an entity's limit on a resource: per period, a share of its parent's, per window (operator)",
    tags=TAGS,
)
def set_limit(tenant_id: TenantId, entity_id: EntityId, resource_type: ResourceType, body: LimitIn) -> EntityLimitOut:
    limit = entities().set_limit(tenant_id, entity_id, resource_type, body.terms(), actor=operator_actor(app))
    return EntityLimitOut.of(limit)


@app.put(
    "/v1/entities/<entity_id>/limits/<resource_type>",
    operation_id="setOwnEntityLimit",
    summary="Set a limit on a resource for an entity of the calling admin key's tenant",
    tags=TAGS,
)
def set_own_limit(entity_id: EntityId, resource_type: ResourceType, body: LimitIn) -> EntityLimitOut:
    tenant_id, actor = _own()
    return EntityLimitOut.of(entities().set_limit(tenant_id, entity_id, resource_type, body.terms(), actor=actor))


@app.get(
    "/v1/tenants/<tenant_id>/entities/<entity_id>/limits",
    operation_id="listEntityLimits",
    summary="An entity's limits with what each has used this period (operator)",
    tags=TAGS,
)
def list_limits(tenant_id: TenantId, entity_id: EntityId) -> EntityLimitListOut:
    operator_actor(app)
    return EntityLimitListOut(items=[EntityLimitOut.of(x) for x in entities().limits(tenant_id, entity_id)])


@app.get(
    "/v1/entities/<entity_id>/limits",
    operation_id="listOwnEntityLimits",
    summary="An entity's limits and use this period, for an admin key's tenant (or an entity token's own)",
    tags=TAGS,
)
def list_own_limits(entity_id: EntityId) -> EntityLimitListOut:
    tenant_id = _readable(entity_id)
    return EntityLimitListOut(items=[EntityLimitOut.of(x) for x in entities().limits(tenant_id, entity_id)])


@app.delete(
    "/v1/tenants/<tenant_id>/entities/<entity_id>/limits/<resource_type>",
    operation_id="deleteEntityLimit",
    summary="Remove an entity's limit on a resource (operator)",
    tags=TAGS,
)
def delete_limit(tenant_id: TenantId, entity_id: EntityId, resource_type: ResourceType) -> EntityLimitOut:
    removed = entities().delete_limit(tenant_id, entity_id, resource_type, actor=operator_actor(app))
    return EntityLimitOut.of(removed)


@app.delete(
    "/v1/entities/<entity_id>/limits/<resource_type>",
    operation_id="deleteOwnEntityLimit",
    summary="Remove a limit of an entity of the calling admin key's tenant",
    tags=TAGS,
)
def delete_own_limit(entity_id: EntityId, resource_type: ResourceType) -> EntityLimitOut:
    tenant_id, actor = _own()
    return EntityLimitOut.of(entities().delete_limit(tenant_id, entity_id, resource_type, actor=actor))


# --- key bindings ------------------------------------------------------------------------------


@app.put(
    "/v1/tenants/<tenant_id>/api-keys/<key_id>/entity",
    operation_id="bindApiKey",
    summary="Bind a tenant's API key to one of its entities, or unbind it (operator)",
    tags=TAGS,
)
def bind_key(tenant_id: TenantId, key_id: KeyId, body: BindKeyIn) -> ApiKeyOut:
    key = entities().bind_key(tenant_id, key_id, body.entity_id, actor=operator_actor(app))
    return ApiKeyOut.model_validate(key.to_dict())


@app.put(
    "/v1/api-keys/<key_id>/entity",
    operation_id="bindOwnApiKey",
    summary="Bind an API key of the calling admin key's tenant to one of its entities, or unbind it",
    tags=TAGS,
)
def bind_own_key(key_id: KeyId, body: BindKeyIn) -> ApiKeyOut:
    tenant_id, actor = _own()
    return ApiKeyOut.model_validate(entities().bind_key(tenant_id, key_id, body.entity_id, actor=actor).to_dict())


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
