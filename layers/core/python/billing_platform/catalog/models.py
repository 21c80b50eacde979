"""Plan catalog models and loader. The catalog ships as `plans.json` beside this module (versioned in
git); PLAN_CATALOG_PATH points at another file for a deployment's own plans."""

from __future__ import annotations

import json
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from billing_platform.catalog.prices import PlanPricing
from billing_platform.errors import CatalogError
from billing_platform.quantities import MAX_QUANTITY, QUANTITY_PLACES

DEFAULT_CATALOG = Path(__file__).with_name("plans.json")


class QuotaPolicy(StrEnum):
    HARD = "hard"  # denied past the limit
    SOFT = "soft"  # allowed past the limit; the excess is overage (billed through meters if metered)
    UNLIMITED = "unlimited"  # always allowed, still counted


class Window(StrEnum):
    """A short window capping a resource besides the billing period. Windows are aligned to the epoch (a
    minute window runs from :00 to :00), so every counter agrees on when one ends without a read."""

    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"

    @property
    def seconds(self) -> int:
        return _WINDOW_SECONDS[self]

    def end_after(self, epoch: int) -> int:
        """End (epoch seconds, exclusive) of the window holding `epoch`."""
        return (epoch // self.seconds + 1) * self.seconds


_WINDOW_SECONDS = {Window.MINUTE: 60, Window.HOUR: 3_600, Window.DAY: 86_400, Window.WEEK: 604_800}
# The shortest billing period a plan can have (a February month): a plan's window must be shorter.
SHORTEST_PERIOD_SECONDS = 28 * 86_400
WindowLimits = dict[Window, Annotated[Decimal, Field(ge=0, le=MAX_QUANTITY, allow_inf_nan=False)]]


def window_marker(windows: dict[Window, Decimal]) -> str:
    """The windows as one string (`minute=20000;day=500000`, shortest first): stored on a counter and pinned
    in every take's condition, so a take built from an outdated plan fails instead of skipping a window."""
    return ";".join(f"{w.value}={windows[w]}" for w in sorted(windows, key=lambda w: w.seconds))


def parse_window_marker(marker: str) -> dict[Window, Decimal]:
    if not marker:
        return {}
    return {Window(unit): Decimal(limit) for unit, limit in (part.split("=", 1) for part in marker.split(";"))}


class ResourceQuota(BaseModel):
    """What a plan grants for one resource type in one billing period, and optionally per short window
    (`windows`, e.g. `{"minute": "20000"}`). A window is always hard whatever the policy: a take past it is
    refused 429 with `Retry-After` (the window's end), and it counts takes only (a release or a reservation
    settled below its estimate gives back to the period, never to a window: a rate counts what was taken)."""

    model_config = ConfigDict(frozen=True)

    limit: Decimal | None = Field(default=None, ge=0)
    policy: QuotaPolicy = QuotaPolicy.HARD
    metered: bool = False  # usage is reported to a Stripe billing meter
    windows: WindowLimits = Field(default_factory=dict)

    @model_validator(mode="after")
    def _limit_matches_policy(self) -> ResourceQuota:
        if self.policy is QuotaPolicy.UNLIMITED and self.limit is not None:
            raise ValueError("an unlimited quota has no limit")
        if self.policy is not QuotaPolicy.UNLIMITED and self.limit is None:
            raise ValueError(f"a {self.policy.value} quota needs a limit")
        return self


# Usage of a resource type can be grouped by up to this many declared dimensions (plus the entity).
MAX_DIMENSIONS = 3
DIMENSION_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
ENTITY_DIMENSION = "entity"
# A tenant x resource x day of the usage read model holds, per hour, one counter per distinct value of
# each dimension and per entity: the caps together bound that item below DynamoDB's 400 KB (24 hours x
# 100 counters of at most 154 bytes: a 128-character entity id, its mark and hour, a 21-byte number).
MAX_TOTAL_CARDINALITY = 100


class Dimension(BaseModel):
    """One declared dimension: at most `max_values` distinct values per tenant and calendar month."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_values: int = Field(default=20, ge=1, le=MAX_TOTAL_CARDINALITY)


class ResourceType(BaseModel):
    model_config = ConfigDict(frozen=True)

    unit: str
    meter_event_name: str
    # Declared dimensions (e.g. tokens: model, region); records may carry only these.
    dimensions: dict[str, Dimension] = Field(default_factory=dict)
    # The entity (user, team, key) is always a dimension; this caps its distinct ids per tenant a month.
    entity_max_values: int = Field(default=60, ge=1, le=MAX_TOTAL_CARDINALITY)

    @model_validator(mode="after")
    def _bounded_dimensions(self) -> ResourceType:
        import re

        if len(self.dimensions) > MAX_DIMENSIONS:
            raise ValueError(f"a resource type declares at most {MAX_DIMENSIONS} dimensions")
        for name in self.dimensions:
            if not re.match(DIMENSION_NAME_PATTERN, name) or name == ENTITY_DIMENSION:
                raise ValueError(
                    f"dimension {name!r} must match {DIMENSION_NAME_PATTERN} and must not be {ENTITY_DIMENSION!r}"
                )
        total = self.entity_max_values + sum(d.max_values for d in self.dimensions.values())
        if total > MAX_TOTAL_CARDINALITY:
            raise ValueError(
                f"the dimensions' max_values and entity_max_values add up to {total}, above {MAX_TOTAL_CARDINALITY}"
            )
        return self

    def cap(self, dimension: str) -> int:
        """The cardinality cap of a declared dimension or of the entity."""
        if dimension == ENTITY_DIMENSION:
            return self.entity_max_values
        return self.dimensions[dimension].max_values


# Percent of a quota's limit at which `billing.quota.threshold_crossed` is published, once per period.
DEFAULT_THRESHOLDS: tuple[Decimal, ...] = (Decimal(50), Decimal(80), Decimal(100))
MAX_THRESHOLDS = 10
# Above 100 % only soft quotas (overage) can get there; 10x the limit is as far as an alert makes sense.
MAX_THRESHOLD_PERCENT = Decimal(1000)


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    rank: int = 0  # orders plans: a higher rank is an upgrade
    prices: tuple[str, ...] = ()
    quotas: dict[str, ResourceQuota] = Field(default_factory=dict)
    features: dict[str, bool] = Field(default_factory=dict)
    past_due_grace_days: int = Field(default=0, ge=0)
    # Hot tenants: a quota split over N counter items so one tenant can pass ~1,000 writes/s.
    counter_shards: int = Field(default=1, ge=1, le=64)
    # Usage alerts, in percent of each quota's limit (billing_platform.events): strictly increasing.
    thresholds: tuple[Decimal, ...] = Field(default=DEFAULT_THRESHOLDS, max_length=MAX_THRESHOLDS)
    # What the plan charges (its fee, each resource's price); None: the plan is not rated in money.
    pricing: PlanPricing | None = None

    @model_validator(mode="after")
    def _windows_fit(self) -> Plan:
        for resource, quota in self.quotas.items():
            if quota.windows and self.counter_shards > 1:
                # A window is one budget on the quota's one counter item: N shards would each hold a part of
                # it, and a take refused on one shard's part could not be told from the whole being used.
                raise ValueError(f"plan {self.id!r}: windows on {resource!r} need counter_shards = 1")
            for window in quota.windows:
                if window.seconds >= SHORTEST_PERIOD_SECONDS:
                    raise ValueError(f"plan {self.id!r}: a {window.value} window is not shorter than the period")
        return self

    @model_validator(mode="after")
    def _thresholds_increase(self) -> Plan:
        for percent in self.thresholds:
            if not (percent.is_finite() and 0 < percent <= MAX_THRESHOLD_PERCENT):
                raise ValueError(f"threshold {percent} is not a percentage in (0, {MAX_THRESHOLD_PERCENT}]")
            if percent != percent.quantize(Decimal("0.01")):
                raise ValueError(f"threshold {percent} has more than 2 decimal places")
        if list(self.thresholds) != sorted(set(self.thresholds)):
            raise ValueError("thresholds must be strictly increasing, without repeats")
        return self

    def quota(self, resource_type: str) -> ResourceQuota | None:
        return self.quotas.get(resource_type)

    def has_feature(self, feature: str) -> bool:
        return self.features.get(feature, False)


class TopupPrice(BaseModel):
    """A Stripe one-off price that buys a grant: `amount` units of `resource_type` per unit of quantity
    bought, drawn after the period quota (by `priority`, lower first), expiring `expires_after_days` after
    the payment (never, when absent)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    resource_type: str
    amount: Decimal = Field(gt=0, le=MAX_QUANTITY, decimal_places=QUANTITY_PLACES, allow_inf_nan=False)
    priority: int = Field(default=50, ge=0, le=100)
    expires_after_days: int | None = Field(default=None, ge=1, le=36_500)


class Catalog(BaseModel):
    """The whole catalog; look-ups raise `CatalogError` with a message that names what is unknown."""

    model_config = ConfigDict(frozen=True)

    version: str
    resource_types: dict[str, ResourceType]
    default_plan: str
    plans: dict[str, Plan]
    # Stripe price id -> what buying it grants (one-off payments: checkout in payment mode, invoices).
    topups: dict[str, TopupPrice] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _plan_ids(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("plans"), dict):
            data = dict(data)
            data["plans"] = {pid: {**p, "id": pid} for pid, p in data["plans"].items()}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Catalog:
        if self.default_plan not in self.plans:
            raise ValueError(f"default_plan {self.default_plan!r} is not a plan")
        seen: dict[str, str] = {}
        for plan in self.plans.values():
            for resource in plan.quotas:
                if resource not in self.resource_types:
                    raise ValueError(f"plan {plan.id!r} grants unknown resource type {resource!r}")
            for resource in plan.pricing.resources if plan.pricing else ():
                if resource not in self.resource_types:
                    raise ValueError(f"plan {plan.id!r} prices unknown resource type {resource!r}")
            for price in plan.prices:
                if price in seen:
                    raise ValueError(f"price {price!r} is in both {seen[price]!r} and {plan.id!r}")
                seen[price] = plan.id
        for price, topup in self.topups.items():
            if topup.resource_type not in self.resource_types:
                raise ValueError(f"top-up price {price!r} grants unknown resource type {topup.resource_type!r}")
            if price in seen:
                raise ValueError(f"price {price!r} is both a top-up and a price of plan {seen[price]!r}")
        return self

    def plan(self, plan_id: str) -> Plan:
        try:
            return self.plans[plan_id]
        except KeyError:
            raise CatalogError(f"unknown plan {plan_id!r}", code="unknown_plan") from None

    def plan_for_price(self, price_id: str) -> Plan:
        for plan in self.plans.values():
            if price_id in plan.prices:
                return plan
        raise CatalogError(f"price {price_id!r} is not in plan catalog version {self.version}", code="unknown_price")

    def topup_for_price(self, price_id: str) -> TopupPrice | None:
        """The top-up a price buys, or None for any other price."""
        return self.topups.get(price_id)

    def require_resource_type(self, resource_type: str) -> ResourceType:
        try:
            return self.resource_types[resource_type]
        except KeyError:
            raise CatalogError(
                f"unknown resource type {resource_type!r}; known: {', '.join(sorted(self.resource_types))}",
                code="unknown_resource_type",
            ) from None

    @property
    def priced_resources(self) -> frozenset[str]:
        """Resources some plan prices (a take of any other resource costs nothing on every plan)."""
        return frozenset(r for plan in self.plans.values() if plan.pricing for r in plan.pricing.resources)

    @property
    def default(self) -> Plan:
        return self.plans[self.default_plan]


def parse_catalog(text: str) -> Catalog:
    return Catalog.model_validate(json.loads(text, parse_float=Decimal))


@lru_cache(maxsize=4)
def load_catalog(path: str | None = None) -> Catalog:
    """Load and validate a catalog file (cached per path for the life of the container)."""
    return parse_catalog(Path(path or DEFAULT_CATALOG).read_text(encoding="utf-8"))
