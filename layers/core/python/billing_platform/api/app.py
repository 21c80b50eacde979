"""Builds the Powertools REST resolver every API function uses, so validation, error bodies and
CORS behave the same on every route.

Also the one place handlers take Powertools' route vocabulary from (`Response`, `content_types`, the
`Path` / `Query` / `Header` parameter markers): imported through the layer, they come after
`billing_platform.deferred_imports` is in place, so a handler never loads the resolvers it does not use.
And the OpenAPI tags: each route names one `ApiTag` (its domain), with a short camelCase `operation_id`
and a one-line `summary`; clients generated from the document are grouped by these tags.
"""

from __future__ import annotations

from enum import StrEnum

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

from billing_platform.api.errors import register_error_handlers
from billing_platform.api.limits import LimitedRestResolver
from billing_platform.api.schemas import ErrorBody

__all__ = ["ApiTag", "Header", "OpenAPIResponse", "Path", "Query", "Response", "content_types", "create_app", "refusal"]


class ApiTag(StrEnum):
    """The OpenAPI tag of each route: one per domain."""

    HEALTH = "Health"
    CUSTOMERS = "Customers"
    SUBSCRIPTIONS = "Subscriptions"
    STRIPE = "Stripe webhooks"
    ENTITLEMENTS = "Entitlements"
    GRANTS = "Grants"
    RESERVATIONS = "Reservations"
    COSTS = "Costs"
    ENTITIES = "Entities"
    USAGE = "Usage"
    API_KEYS = "API keys"
    AUDIT = "Audit log"
    WEBHOOK_ENDPOINTS = "Webhook endpoints"

    @property
    def description(self) -> str:
        return TAG_DESCRIPTIONS[self]


TAG_DESCRIPTIONS = {
    ApiTag.HEALTH: "Liveness of the API path",
    ApiTag.CUSTOMERS: "Billing customers in Stripe, each bound to one tenant (operator)",
    ApiTag.SUBSCRIPTIONS: "Tenants' Stripe subscriptions: create, change price, cancel (operator)",
    ApiTag.STRIPE: "The target of Stripe's webhook events (signed by Stripe)",
    ApiTag.ENTITLEMENTS: "Check, consume and release quota; a tenant's plan, quotas and features",
    ApiTag.GRANTS: "Credit grants: quota given to a tenant on top of its plan (operator)",
    ApiTag.RESERVATIONS: "Hold an estimate of quota, then settle the actual quantity or cancel",
    ApiTag.COSTS: "What a tenant's usage costs so far this period, and the invoice it would close with",
    ApiTag.ENTITIES: "Users, teams and keys under a tenant, with their own limits (operator or admin key)",
    ApiTag.USAGE: "Usage records in, daily trends and top consumers out",
    ApiTag.API_KEYS: "Tenants' API keys (operator)",
    ApiTag.AUDIT: "The audit log of a tenant (operator)",
    ApiTag.WEBHOOK_ENDPOINTS: "Where a tenant receives the platform's signed events (operator or admin key)",
}


def refusal(description: str) -> OpenAPIResponse:
    """A route's own refusal (a 402, 404, 409 ...) for its `responses`, in the platform's error body."""
    return {"description": description, "content": {"application/json": {"model": ErrorBody}}}


def create_app(*, title: str) -> APIGatewayRestResolver:
    """A REST resolver with pydantic validation, the body limits (api.limits) and the platform's
    error mapping (api.errors)."""
    app = LimitedRestResolver(enable_validation=True)
    app.configure_openapi(title=title, version="1.0.0")
    register_error_handlers(app)
    return app
