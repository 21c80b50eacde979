"""HTTP answers of the spend-cap routes (`PUT/GET/DELETE /v1/tenants/{tenant_id}/spend-cap`); the request
body is `models.SpendCapRequest`. Amounts are integers in the currency's minor unit; the spend counted is
exact (a decimal string: sub-unit prices leave fractions until an invoice line rounds them)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from billing_platform.quantities import decimal_str
from billing_platform.spend.models import SpendCap, SpendState


class SpendCapOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    tenant_id: str
    capped: bool = Field(description="False: the tenant has no cap (the other cap fields are null)")
    currency: str | None
    amount: int | None = Field(description="The period's cap, in minor units")
    kind: str | None = Field(description="hard (takes past it are refused with 402) or soft (events only)")
    resources: dict[str, int] = Field(description="Per resource caps, in minor units")
    entities: dict[str, int] = Field(description="Per entity caps, in minor units")
    thresholds: list[str] = Field(description="Percentages of the cap at which events are published")
    period_end: str = Field(description="ISO 8601 UTC: the end of the period the spend is counted in")
    spend: str = Field(description="This period's spend so far, exact, in minor units (decimal string)")
    spend_by_resource: dict[str, str] = Field(description="The same, per resource")
    spend_by_entity: dict[str, str] = Field(description="What the takes made for each entity cost, exact")

    @classmethod
    def of(cls, tenant_id: str, cap: SpendCap | None, period_end: datetime, state: SpendState) -> SpendCapOut:
        return cls(
            tenant_id=tenant_id,
            capped=cap is not None,
            currency=cap.currency if cap else None,
            amount=int(cap.amount) if cap else None,
            kind=cap.kind.value if cap else None,
            resources={r: int(a) for r, a in sorted(cap.resources.items())} if cap else {},
            entities={e: int(a) for e, a in sorted(cap.entities.items())} if cap else {},
            thresholds=[str(t) for t in cap.thresholds] if cap else [],
            period_end=period_end.isoformat(),
            spend=decimal_str(state.total) or "0",
            spend_by_resource={r: decimal_str(a) or "0" for r, a in sorted(state.spent.items())},
            spend_by_entity={e: decimal_str(a) or "0" for e, a in sorted(state.by_entity.items())},
        )
