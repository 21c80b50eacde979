"""HTTP request and response shapes of the entities API (documented in the OpenAPI schema and checked
against every response)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from billing_platform.catalog.models import Window
from billing_platform.entities.models import (
    ENTITY_ID_MAX_LENGTH,
    ENTITY_ID_PATTERN,
    MAX_SHARE_PERCENT,
    EntityLimit,
    LimitKind,
    LimitTerms,
)

EntityId = Annotated[str, Field(min_length=1, max_length=ENTITY_ID_MAX_LENGTH, pattern=ENTITY_ID_PATTERN)]
Amount = Annotated[Decimal, Field(ge=0, lt=Decimal("1e15"), decimal_places=6, allow_inf_nan=False)]


class CreateEntityIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: EntityId = Field(description="The tenant's own id for it (a user id, a team id, a key id...)")
    parent_id: EntityId | None = Field(
        default=None, description="An existing entity of the tenant; none: directly under the tenant (at most 3 levels)"
    )
    kind: str | None = Field(default=None, max_length=64, description="A free label: user, team, key, workspace...")
    name: str | None = Field(default=None, max_length=200)


class UpdateEntityIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, max_length=200)


class EntityOut(BaseModel):
    tenant_id: str
    id: str
    parent_id: str | None = None
    kind: str | None = None
    name: str | None = None
    depth: int = Field(description="1 directly under the tenant, at most 3")
    ancestors: list[str] = Field(description="Parent first, up to the entity directly under the tenant")
    limited_resources: list[str] = Field(description="Resources this entity carries a limit on")
    children: int
    bound_keys: int = Field(description="API keys whose consumes count at this entity")
    created_at: datetime


class EntityPageOut(BaseModel):
    items: list[EntityOut]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page")


class LimitIn(BaseModel):
    """An entity's limit on one resource: `amount` per billing period (`kind` absolute) or `share_percent` of
    the parent's limit (`kind` share), and optionally caps per short window."""

    model_config = ConfigDict(extra="forbid")

    kind: LimitKind = LimitKind.ABSOLUTE
    amount: Amount | None = Field(default=None, description="Per billing period, for `kind` absolute")
    share_percent: Decimal | None = Field(
        default=None,
        gt=0,
        le=MAX_SHARE_PERCENT,
        decimal_places=4,
        description="Percent of the parent's limit (nearest limited ancestor's, else the plan quota), `kind` share",
    )
    windows: dict[Window, Amount] = Field(
        default_factory=dict, description='Caps per window, e.g. {"minute": 100}; each shorter than the billing period'
    )

    @model_validator(mode="after")
    def _one_basis(self) -> LimitIn:
        if self.kind is LimitKind.ABSOLUTE and (self.amount is None or self.share_percent is not None):
            raise ValueError("an absolute limit takes `amount` and no `share_percent`")
        if self.kind is LimitKind.SHARE and (self.share_percent is None or self.amount is not None):
            raise ValueError("a share takes `share_percent` and no `amount`")
        return self

    def terms(self) -> LimitTerms:
        return LimitTerms(self.kind, self.amount, self.share_percent, dict(self.windows))


class EntityLimitOut(BaseModel):
    tenant_id: str
    entity_id: str
    resource_type: str
    kind: LimitKind
    amount: Decimal | None = None
    share_percent: Decimal | None = None
    windows: dict[Window, Decimal] = Field(default_factory=dict)
    limit: Decimal = Field(description="The period limit enforced (a share resolved when it was set)")
    used: Decimal = Field(description="Counted in the current period")
    remaining: Decimal
    period_end: datetime | None = None

    @classmethod
    def of(cls, limit: EntityLimit) -> EntityLimitOut:
        return cls.model_validate(limit.to_dict())


class EntityLimitListOut(BaseModel):
    items: list[EntityLimitOut]


class BindKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity_id: EntityId | None = Field(description="The entity the key's consumes count at; null unbinds the key")
