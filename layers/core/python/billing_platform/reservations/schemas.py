"""The HTTP API's request and response bodies for reservations (validated before anything is written)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from billing_platform.api.schemas import DecimalText, InstantText
from billing_platform.entities.models import ENTITY_ID_MAX_LENGTH, ENTITY_ID_PATTERN
from billing_platform.ids import TENANT_ID_MAX_LENGTH, TENANT_ID_PATTERN
from billing_platform.quantities import MAX_QUANTITY, QUANTITY_PLACES
from billing_platform.reservations.models import DEFAULT_TTL, MAX_TTL, MIN_TTL, ReservationState

Amount = Annotated[Decimal, Field(le=MAX_QUANTITY, decimal_places=QUANTITY_PLACES, allow_inf_nan=False)]


class ReserveRequest(BaseModel):
    """`POST /v1/entitlements/reservations`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    tenant_id: str = Field(min_length=1, max_length=TENANT_ID_MAX_LENGTH, pattern=TENANT_ID_PATTERN)
    resource_type: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    estimate: Annotated[Amount, Field(gt=0)]
    ttl_seconds: int = Field(
        default=int(DEFAULT_TTL.total_seconds()), ge=int(MIN_TTL.total_seconds()), le=int(MAX_TTL.total_seconds())
    )
    # A retried reserve with the same key finds the same reservation instead of holding twice.
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")
    entity_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=ENTITY_ID_MAX_LENGTH,
        pattern=ENTITY_ID_PATTERN,
        description="Hold at this entity and every limited level above it (default: the calling key's bound entity)",
    )


class SettleRequest(BaseModel):
    """`POST /v1/entitlements/reservations/{reservation_id}/settle`."""

    model_config = ConfigDict(extra="forbid")

    quantity: Annotated[Amount, Field(ge=0)]
    # Operators name the tenant; a tenant key may omit it (its own tenant) or repeat it.
    tenant_id: str | None = Field(
        default=None, min_length=1, max_length=TENANT_ID_MAX_LENGTH, pattern=TENANT_ID_PATTERN
    )


class GrantPaid(BaseModel):
    grant_id: str
    quantity: DecimalText


class ReservationOut(BaseModel):
    """A reservation as the API returns it (quantities as decimal text, times ISO 8601 UTC)."""

    reservation_id: str
    tenant_id: str
    resource_type: str
    state: ReservationState = Field(description="held, settled, cancelled or expired")
    estimate: DecimalText = Field(description="What the reserve took from the quota (and grants)")
    actual: DecimalText | None = Field(description="the settled quantity as reported")
    charged: DecimalText = Field(description="what the quota counts and the usage pipeline meters")
    given_back: DecimalText = Field(description="What the settle, cancel or expiry gave back of the estimate")
    uncovered: DecimalText = Field(description="extra a hard quota could not cover")
    from_grants: list[GrantPaid] = Field(
        default_factory=list, description="what each credit grant paid past an exhausted hard quota"
    )
    forfeited: DecimalText = Field(
        default="0", description="grant units not given back: the grant expired or was voided"
    )
    entity_id: str | None = Field(default=None, description="The entity whose levels hold the estimate too")
    reserved_at: InstantText
    expires_at: InstantText = Field(description="Unsettled by then, the reservation expires and gives back")
    resolved_at: InstantText | None = Field(description="When it was settled, cancelled or expired")
    replayed: bool = Field(default=False, description="true: a repeat of a request already applied")


class OpenReservationsOut(BaseModel):
    """`GET /v1/tenants/{tenant_id}/reservations`: the tenant's held reservations, soonest expiry first."""

    tenant_id: str
    items: list[ReservationOut]
    truncated: bool = Field(description="true: more are open than one answer lists (100)")
