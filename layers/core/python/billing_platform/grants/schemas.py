"""The HTTP API's request and response bodies for grants (operator routes)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from billing_platform.api.schemas import DecimalText, InstantText
from billing_platform.grants.models import DEFAULT_PRIORITY, MAX_PRIORITY, MIN_PRIORITY, GrantSource
from billing_platform.instants import UtcInstant
from billing_platform.quantities import MAX_QUANTITY, QUANTITY_PLACES


class CreateGrantRequest(BaseModel):
    """`POST /v1/tenants/{tenant_id}/grants` (operator)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    resource_type: str = Field(
        min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$", description="A resource type of the catalog"
    )
    amount: Decimal = Field(gt=0, le=MAX_QUANTITY, decimal_places=QUANTITY_PLACES, allow_inf_nan=False)
    priority: int = Field(
        default=DEFAULT_PRIORITY,
        ge=MIN_PRIORITY,
        le=MAX_PRIORITY,
        description="Draw order among the tenant's grants: lower first, then earliest expiry, then oldest",
    )
    expires_at: UtcInstant | None = Field(
        default=None, description="ISO 8601 with a timezone, in the future; absent: never"
    )
    reason: str | None = Field(default=None, max_length=500)


class GrantOut(BaseModel):
    """A grant: `used + remaining + voided_amount == amount`."""

    grant_id: str
    tenant_id: str
    resource_type: str
    amount: DecimalText
    remaining: DecimalText = Field(description="What is left to draw (frozen once the grant expires)")
    used: DecimalText = Field(description="What takes drew from it")
    voided_amount: DecimalText = Field(description="What a void took away")
    priority: int = Field(description="Draw order among the tenant's grants: lower first")
    expires_at: InstantText | None = Field(description="It stops counting at this instant; null: never")
    status: Literal["active", "depleted", "expired", "voided"]
    source: GrantSource = Field(description="Who made it: an operator, or a paid Stripe checkout or invoice")
    source_id: str = Field(
        description="An operator grant: its own grant_id. A top-up: the Stripe object and line it was paid by "
        "(<object id>:<line id>)"
    )
    price_id: str | None = Field(description="The Stripe top-up price it was bought with")
    reason: str | None
    created_at: InstantText
    created_by: str
    voided_at: InstantText | None
    voided_by: str | None


class GrantListOut(BaseModel):
    tenant_id: str
    grants: list[GrantOut] = Field(description="Every grant of the tenant (of one resource when filtered)")
