"""Who is asking, for every API route: the caller the authorizer established, checked for the
tenant or operator the route needs, and the `Actor` that audit entries and Stripe calls carry."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from billing_platform.audit.log import actor_from_caller, request_id_from_context
from billing_platform.auth.caller import Actor, Caller, caller_from_request_context, require_scope
from billing_platform.errors import TenantAccessDenied
from billing_platform.observability import logger

# Longest Idempotency-Key passed on to Stripe (its own limit is 255).
IDEMPOTENCY_KEY_MAX_LENGTH = 200


def current_caller(app: APIGatewayRestResolver) -> Caller:
    """The authenticated caller of the current request (401 when the authorizer left none)."""
    caller = caller_from_request_context(app.current_event.raw_event.get("requestContext"))
    if caller.tenant_id:
        logger.append_keys(tenant_id=caller.tenant_id)
    return caller


def tenant_caller(app: APIGatewayRestResolver, tenant_id: str) -> Caller:
    """The caller, allowed to act for `tenant_id` (its own tenant, or an operator); 403 otherwise."""
    caller = caller_from_request_context(app.current_event.raw_event.get("requestContext"))
    caller.require_tenant(tenant_id)
    logger.append_keys(tenant_id=tenant_id)
    return caller


def actor_of(app: APIGatewayRestResolver, caller: Caller) -> Actor:
    """The caller as audit entries and provider calls name it, with this request's id and its
    `Idempotency-Key` header (if any)."""
    key = app.current_event.headers.get("Idempotency-Key")
    return Actor(
        principal_id=actor_from_caller(caller),
        request_id=request_id_from_context(app.current_event.raw_event.get("requestContext")),
        idempotency_key=key[:IDEMPOTENCY_KEY_MAX_LENGTH] if key else None,
    )


def operator_actor(app: APIGatewayRestResolver) -> Actor:
    """The operator behind the current request (403 for a tenant key)."""
    caller = caller_from_request_context(app.current_event.raw_event.get("requestContext"))
    caller.require_operator()
    return actor_of(app, caller)


def admin_caller(app: APIGatewayRestResolver) -> Caller:
    """A tenant key with the `admin` scope, acting for its own tenant (`Caller.tenant_id`); 403 otherwise.
    Operators manage a tenant through the `/v1/tenants/{tenant_id}/...` routes instead."""
    caller = current_caller(app)
    require_scope(caller, "admin")
    if caller.tenant_id is None:
        raise TenantAccessDenied("this route acts for the calling key's own tenant; operators name the tenant")
    return caller
