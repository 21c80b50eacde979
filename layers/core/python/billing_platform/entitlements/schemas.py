"""The HTTP API's request and response bodies for entitlements (validated before anything is written)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from billing_platform.api.schemas import DecimalText, InstantText
from billing_platform.catalog.models import QuotaPolicy
from billing_platform.entities.models import ENTITY_ID_MAX_LENGTH, ENTITY_ID_PATTERN
from billing_platform.entitlements.models import SUBSCRIBED, CounterState, DenyReason
from billing_platform.grants.schemas import GrantOut
from billing_platform.ids import TENANT_ID_MAX_LENGTH, TENANT_ID_PATTERN
from billing_platform.quantities import MAX_QUANTITY, QUANTITY_PLACES

Quantity = Annotated[
    Decimal,
    Field(gt=0, le=MAX_QUANTITY, decimal_places=QUANTITY_PLACES, allow_inf_nan=False),
]


class QuotaRequest(BaseModel):
    """`POST /v1/entitlements/check` and `/consume`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    tenant_id: str = Field(min_length=1, max_length=TENANT_ID_MAX_LENGTH, pattern=TENANT_ID_PATTERN)
    resource_type: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    quantity: Quantity = Field(default=Decimal(1), description="How much to check or take (default 1)")
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="consume: a retry with the same key takes nothing more and answers what the first one "
        "answered (replayed: true), a refusal included; the same key with another request is a 422. check: not "
        "used",
    )
    entity_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=ENTITY_ID_MAX_LENGTH,
        pattern=ENTITY_ID_PATTERN,
        description="Count at this entity and every limited level above it too, all or nothing (default: the "
        "entity the calling key is bound to, if any)",
    )


class ReleaseRequest(QuotaRequest):
    """`POST /v1/entitlements/release`."""

    quantity: Quantity | None = Field(  # type: ignore[assignment]
        default=None,
        description="How much to give back (never below zero used); required without an idempotency key",
    )
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="The key of a consume: gives back exactly what it took, once, within its period",
    )


class LevelOut(BaseModel):
    """One level of a take naming an entity, as read for a refusal (a period, or one of its windows)."""

    level: str = Field(description="`tenant` (the plan quota) or `entity:<id>`")
    window: str | None = Field(description="null: the billing period; else the window (minute, hour, day, week)")
    limit: DecimalText | None = Field(description="null for an unlimited quota")
    used: DecimalText
    remaining: DecimalText | None = Field(description="Never below 0; null for an unlimited quota")
    resets_at: InstantText | None = Field(description="The period's or the window's end")


class GrantDrawOut(BaseModel):
    grant_id: str
    quantity: DecimalText = Field(description="What this take drew from the grant")


class EntitlementOut(BaseModel):
    """The answer to a check or a consume: quantities as decimal text, times ISO 8601 UTC."""

    tenant_id: str
    resource_type: str
    quantity: DecimalText = Field(description="The quantity asked for")
    allowed: bool = Field(
        description="check: whether a consume of this quantity would be allowed now (the quota, then the "
        "tenant's live grants for a hard quota). consume: true (a refusal is a 402)"
    )
    policy: QuotaPolicy | None = Field(description="hard, soft or unlimited; null when not in the plan")
    limit: DecimalText | None = Field(description="The period's limit; null for an unlimited quota")
    used: DecimalText
    remaining: DecimalText | None = Field(description="Never below 0; null for an unlimited quota")
    overage: DecimalText = Field(description="How far a soft quota is past its limit")
    resets_at: InstantText | None = Field(description="When the period ends and the quota resets")
    reason: DenyReason | None = Field(description="Why it is not allowed; null when allowed")
    enforced: bool = Field(
        description="false: this deployment does not enforce quotas (ENTITLEMENT_CHECK_ENABLED=false): every take is "
        "allowed, and counted when the quota is in the plan and not suspended"
    )
    replayed: bool = Field(description="true: the answer of an earlier consume with the same idempotency key")
    approximate: bool = Field(
        description="true: used and remaining are estimates, not the counter's state after this take: a "
        "sharded quota (one shard seen, scaled), a take naming an entity with limited levels (a transaction "
        "returns no item: the numbers this container saw last, moved by this take), or a replay whose stored "
        "answer was not found (the counter as it is now)"
    )
    grant_remaining: DecimalText | None = Field(
        description="What the tenant's live grants hold for the resource; null when not read (the hot path "
        "reads grants only when the quota is short)"
    )
    from_grants: list[GrantDrawOut] = Field(description="What this take drew from each grant, in draw order")
    entity_id: str | None = Field(default=None, description="The entity the take was counted at, with its ancestors")
    refused_by: str | None = Field(
        default=None, description="The level that refused (`tenant` or `entity:<id>`); null when allowed"
    )
    levels: list[LevelOut] = Field(
        default_factory=list, description="A refusal naming an entity: what every level and window holds"
    )
    retry_after_seconds: int | None = Field(
        default=None, description="A window refusal (reason window_exhausted): seconds until that window ends"
    )


class ReleaseOut(EntitlementOut):
    """The answer to a release: `quantity` and `released` are what was actually given back."""

    released: DecimalText = Field(description="What was given back (equal to quantity)")


class QuotaOut(BaseModel):
    """One quota of the tenant's plan in the current period."""

    resource_type: str
    policy: QuotaPolicy | None
    limit: DecimalText | None = Field(description="null for an unlimited quota")
    used: DecimalText
    remaining: DecimalText | None = Field(description="Never below 0; null for an unlimited quota")
    overage: DecimalText = Field(description="How far a soft quota is past its limit")
    period_start: InstantText | None
    period_end: InstantText | None
    state: CounterState = Field(
        description="active; suspended (past due beyond grace or unpaid: denied, usage still shown); "
        "retired (no longer in the plan)"
    )
    shards: int = Field(description="How many counter items the quota is spread over (hot tenants)")
    grant_remaining: DecimalText = Field(description="What the live grants hold on top of the quota")
    grants: list[GrantOut] = Field(description="Every grant of the resource, in draw order")


class TenantEntitlementsOut(BaseModel):
    """`GET /v1/tenants/{tenant_id}/entitlements` (billing_platform.entitlements.views.TenantEntitlements)."""

    tenant_id: str
    plan_id: str = Field(description="The plan in force: the subscription's, or the catalog default (free)")
    status: str = Field(
        description="active, trialing, past_due (within the plan's grace), suspended (unpaid, paused or past "
        "due beyond grace: quotas deny, features off) or canceled (the subscription ended: default plan)"
    )
    subscribed: bool = Field(description=SUBSCRIBED)
    period_start: InstantText
    period_end: InstantText
    features: dict[str, bool] = Field(description="Each feature of the plan; all false while suspended")
    quotas: list[QuotaOut] = Field(description="Each quota of the plan, with its grants")
