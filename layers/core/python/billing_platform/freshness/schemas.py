"""HTTP shape of `GET /v1/ops/freshness` (operator); `billing-admin freshness --json` prints the same."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

LevelOut = Literal["ok", "late", "unknown"]


class FigureOut(BaseModel):
    value: float | None = Field(description="Seconds (ages, lags) or messages (depths); null: no datapoint")
    threshold: float = Field(description="The CloudWatch alarm's threshold for this figure")
    level: LevelOut = Field(description="late: at or past the threshold; unknown: no datapoint in the window")
    source: str = Field(description="Where the figure comes from (metric or API), as the alarm reads it")


class MeterRunOut(BaseModel):
    started_at: str | None = Field(description="ISO 8601 UTC of the meter reporter's last run; null: never ran")
    events_sent: int | None = None
    events_failed: int | None = None


class TenantMeterOut(BaseModel):
    resource_type: str
    last_reported_hour: str | None = Field(description="Newest hour reported to Stripe's meter (`2026-12-07T10`)")
    reported: str | None = Field(description="Units of that hour reported so far (decimal string)")


class TenantFreshnessOut(BaseModel):
    tenant_id: str
    meters: list[TenantMeterOut] = Field(description="Each metered resource of the catalog")


class FreshnessOut(BaseModel):
    at: str = Field(description="When the figures were read (ISO 8601 UTC)")
    usage_queue_oldest_message_age: FigureOut
    usage_queue_visible: int
    usage_queue_in_flight: int
    aggregator_iterator_age: FigureOut
    meter_reporter_lag: FigureOut
    meter_reporter_last_run: MeterRunOut
    usage_dlq_depth: FigureOut
    webhook_dlq_depth: FigureOut
    tenant: TenantFreshnessOut | None = None
