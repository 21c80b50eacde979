"""The HTTP API's request and response bodies for tenants' webhook endpoints (operator routes). The signing
secret is in `CreatedWebhookEndpointOut` only."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from billing_platform.api.schemas import InstantText
from billing_platform.tenant_webhooks.service import MAX_URL_LENGTH


class CreateWebhookEndpoint(BaseModel):
    """`POST /v1/tenants/{tenant_id}/webhook-endpoints`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH)
    enabled_events: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=lambda: ["*"], max_length=10, description="The event types to deliver; * (default): all"
    )
    description: str | None = Field(default=None, max_length=500)


class WebhookEndpointOut(BaseModel):
    """A tenant's webhook endpoint (never its secret)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    tenant_id: str
    url: str
    description: str | None
    enabled_events: list[str]
    created_at: InstantText


class CreatedWebhookEndpointOut(WebhookEndpointOut):
    secret: str = Field(description="Signs every event sent to the endpoint. Shown once, in this answer only")


class WebhookEndpointListOut(BaseModel):
    items: list[WebhookEndpointOut]
