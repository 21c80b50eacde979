"""Entitlement models and the pure arithmetic behind them: counters, periods, shard splits, checks.

No I/O here. Quantities are `Decimal`; times are timezone-aware UTC. A counter keeps the invariant
`used + remaining == limit` (unlimited counters keep `limit == 0`, so `remaining == -used`), which is
what lets the hot path test `remaining >= :q` in a DynamoDB condition.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from billing_platform.catalog.models import QuotaPolicy
from billing_platform.quantities import MAX_QUANTITY, QUANTITY_PLACES, ZERO, decimal_str

# `TenantPlan.subscribed`, in the words the API's field description uses.
SUBSCRIBED = (
    "True while the tenant holds a subscription that has not ended: trialing, active, past_due or suspended "
    "(unpaid, paused or past due beyond grace; status says which), including one set to cancel at its "
    "period's end, until then. False on the default plan: never subscribed, or the subscription ended "
    "(canceled at once or at its period's end, expired incomplete). A subscription still incomplete (first "
    "payment pending) is not counted yet, although POST /v1/subscriptions already answers 409 "
    "subscription_exists for it: its plan applies when the first invoice is paid."
)
# Two periods whose ends are this close are the same billing period (a lazy rollover and the renewal
# webhook computing the same end by different routes must not grant the period twice).
SAME_PERIOD_TOLERANCE = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class ConsumeRequest:
    """One take of quota, as the use cases pass it down: who takes, what, how much, and the key that
    makes every retry of it the same take (None: each call is a new take). `entity_id` names the entity
    (user, team, key) under the tenant the take counts for; None counts for the tenant alone."""

    tenant_id: str
    resource_type: str
    quantity: Decimal
    idempotency_key: str | None = None
    entity_id: str | None = None


@dataclass(frozen=True, slots=True)
class ReleaseRequest:
    """Quota given back. With `idempotency_key`: exactly what that consume took, once, within its period
    (`quantity`, when given, must match it). Without: up to `quantity`, never below zero used, and with
    `period_end` only while the quota is still in that period."""

    tenant_id: str
    resource_type: str
    quantity: Decimal | None = None
    idempotency_key: str | None = None
    period_end: datetime | None = None
    entity_id: str | None = None


class CounterState(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"  # past due beyond grace / unpaid: denied, usage still visible
    RETIRED = "retired"  # resource no longer in the plan, or an old shard layout


class PlanStatus(StrEnum):
    ACTIVE = "active"
    TRIALING = "trialing"
    PAST_DUE = "past_due"
    SUSPENDED = "suspended"
    CANCELED = "canceled"  # the subscription ended: the tenant is back on the catalog default plan


class DenyReason(StrEnum):
    EXHAUSTED = "quota_exhausted"
    NOT_IN_PLAN = "not_in_plan"
    SUSPENDED = "suspended"
    # A short window (minute, hour, day...) of some level is used up; the period quota is not (429).
    WINDOW = "window_exhausted"


@dataclass(frozen=True)
class LevelState:
    """What one level of a take holds, as read for a refusal: `level` is `tenant` or `entity:<id>`,
    `window` None for the billing period, else the window's unit (`resets_at` is then its end)."""

    level: str
    limit: Decimal | None
    used: Decimal
    remaining: Decimal | None
    resets_at: datetime | None
    window: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "level": self.level,
            "window": self.window,
            "limit": decimal_str(self.limit),
            "used": decimal_str(self.used),
            "remaining": decimal_str(self.remaining),
            "resets_at": self.resets_at.isoformat() if self.resets_at else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> LevelState:
        def dec(name: str) -> Decimal | None:
            value = data.get(name)
            return None if value is None else Decimal(str(value))

        resets = data.get("resets_at")
        window = data.get("window")
        return cls(
            level=str(data["level"]),
            limit=dec("limit"),
            used=dec("used") or ZERO,
            remaining=dec("remaining"),
            resets_at=datetime.fromisoformat(str(resets)) if resets else None,
            window=str(window) if window else None,
        )


def validate_quantity(quantity: Decimal) -> Decimal:
    """Raise ValueError unless `quantity` is a positive, finite Decimal with at most 6 places."""
    if not isinstance(quantity, Decimal):
        raise ValueError("quantity must be a Decimal")
    if not quantity.is_finite():
        raise ValueError("quantity must be finite")
    if quantity <= 0:
        raise ValueError("quantity must be positive")
    if quantity > MAX_QUANTITY:
        raise ValueError("quantity is too large")
    exponent = quantity.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -QUANTITY_PLACES:
        raise ValueError(f"quantity has more than {QUANTITY_PLACES} decimal places")
    return quantity


def add_months(moment: datetime, months: int) -> datetime:
    """Calendar month arithmetic, clamping the day (Jan 31 + 1 month = Feb 28/29), as Stripe does."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def calendar_month(now: datetime) -> tuple[datetime, datetime]:
    """The UTC calendar month containing `now`: the period of a tenant with no subscription."""
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start, add_months(start, 1)


def period_months(start: datetime, end: datetime) -> int:
    """Length of a billing period in whole months (at least 1): 1 for monthly, 12 for yearly."""
    months = (end.year - start.year) * 12 + (end.month - start.month)
    if add_months(start, months) > end + SAME_PERIOD_TOLERANCE:
        months -= 1
    return max(1, months)


def advance_period(start: datetime, end: datetime, now: datetime) -> tuple[datetime, datetime]:
    """The period containing `now`, reached by stepping [start, end) forward by its own length.
    Returns (start, end) unchanged when `now < end`. Used for the lazy rollover without a webhook.

    Steps are anchored on the billing day, as Stripe anchors a subscription: of `start` and `end`, the
    one with the larger day of month was not clamped (Jan 31 -> Feb 28 -> Mar 31, not Mar 28)."""
    months = period_months(start, end)
    anchor, offset = (start, months) if start.day > end.day else (end, 0)
    steps = 0
    period_start, period_end = start, end
    while period_end <= now:
        steps += 1
        period_start, period_end = period_end, add_months(anchor, offset + months * steps)
    return period_start, period_end


def same_period(end_a: datetime, end_b: datetime) -> bool:
    """True when two period ends name the same billing period (within SAME_PERIOD_TOLERANCE)."""
    return abs(end_a - end_b) <= SAME_PERIOD_TOLERANCE


def split_limit(limit: Decimal, shards: int) -> list[Decimal]:
    """Split a quota over `shards` counters: whole units, the remainder on the first shards, so the
    shard limits always sum to exactly `limit`."""
    if shards <= 1:
        return [limit]
    whole = int(limit) if limit == limit.to_integral_value() else None
    if whole is None:
        base = (limit / shards).quantize(Decimal(1).scaleb(-QUANTITY_PLACES), rounding="ROUND_DOWN")
        parts = [base] * shards
        parts[0] += limit - base * shards
        return parts
    base_int, extra = divmod(whole, shards)
    return [Decimal(base_int + (1 if i < extra else 0)) for i in range(shards)]


def spread_used(used: Decimal, limits: list[Decimal]) -> list[Decimal]:
    """Carry `used` into a new shard layout evenly (as `split_limit` splits), so every shard keeps
    about the same share left and one shard's state estimates the whole; the parts sum to `used`."""
    return split_limit(used, len(limits))


@dataclass(frozen=True)
class QuotaCounter:
    """One counter item: a quota (or one shard of it) of one tenant, resource and period."""

    tenant_id: str
    resource_type: str
    policy: QuotaPolicy
    limit: Decimal  # this shard's limit; 0 for unlimited
    used: Decimal
    remaining: Decimal
    period_start: datetime
    period_end: datetime
    plan_id: str
    state: CounterState = CounterState.ACTIVE
    shard: int = 0
    shards: int = 1
    total_limit: Decimal | None = None  # the whole quota's limit (None for unlimited)
    # On a RETIRED item: the layout now in force (0: the resource is not in the plan). The unsharded
    # key always exists once a quota is provisioned (a retired marker when sharded), so one failed
    # hot-path update tells a caller with a stale layout where to go.
    current_shards: int | None = None
    # The plan's short windows on this counter as its item carries them (`catalog.models.window_marker`;
    # "": none). Every take pins it, so a take built from other terms fails instead of skipping a window.
    windows: str = ""

    def allows(self, quantity: Decimal, now: datetime, *, enforce: bool = True) -> bool:
        """The same predicate as the hot path's ConditionExpression."""
        if self.state is not CounterState.ACTIVE or self.period_end <= now:
            return False
        return (not enforce) or self.policy is not QuotaPolicy.HARD or self.remaining >= quantity

    def consumed(self, quantity: Decimal) -> QuotaCounter:
        return _replace(self, used=self.used + quantity, remaining=self.remaining - quantity)

    def released(self, quantity: Decimal) -> QuotaCounter:
        give = min(quantity, self.used)
        return _replace(self, used=self.used - give, remaining=self.remaining + give)

    def rolled(self, start: datetime, end: datetime) -> QuotaCounter:
        return _replace(self, used=ZERO, remaining=self.limit, period_start=start, period_end=end)


def _replace(counter: QuotaCounter, **changes: object) -> QuotaCounter:
    return replace(counter, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TenantPlan:
    """What a tenant is entitled to now: the `TENANT#<tid>`/`PLAN` item, or the default plan."""

    tenant_id: str
    plan_id: str
    status: str  # a PlanStatus value, or the provider's own subscription status
    period_start: datetime
    period_end: datetime
    features: dict[str, bool]
    counter_shards: int = 1
    source_version: int | None = None
    suspended_reason: str | None = None
    stored: bool = True  # False: no subscription, the catalog's default plan in calendar months

    @property
    def suspended(self) -> bool:
        return self.status == PlanStatus.SUSPENDED.value

    @property
    def subscribed(self) -> bool:
        """What `SUBSCRIBED` says (the API documents the field with that text). An ended subscription is
        the one `revoke` stored as `canceled`."""
        return self.stored and self.status != PlanStatus.CANCELED.value

    def feature(self, name: str) -> bool:
        return (not self.suspended) and self.features.get(name, False)


@dataclass(frozen=True)
class EntitlementCheck:
    """The answer to a check or consume. `remaining`/`limit` are None for unlimited quotas;
    `overage` is how far a soft quota is past its limit. On a sharded quota's fast path `remaining`
    and `used` are estimates (`approximate=True`); a denial always reports exact totals."""

    tenant_id: str
    resource_type: str
    quantity: Decimal
    allowed: bool
    policy: QuotaPolicy | None
    limit: Decimal | None
    used: Decimal
    remaining: Decimal | None
    resets_at: datetime | None
    overage: Decimal = ZERO
    reason: DenyReason | None = None
    enforced: bool = True
    replayed: bool = False
    approximate: bool = False
    idempotency_key: str | None = None
    shards_used: tuple[tuple[int, Decimal], ...] = field(default=())
    # Grants: what this take drew from each grant (in draw order), and what the tenant's live grants hold
    # for the resource (None when not read: the hot path never reads grants).
    grants_used: tuple[tuple[str, Decimal], ...] = field(default=())
    grant_remaining: Decimal | None = None
    # A take naming an entity: the level that refused (`tenant` or `entity:<id>`), what each level held
    # (read for the refusal), and for a window refusal the seconds until that window ends.
    entity_id: str | None = None
    refused_by: str | None = None
    levels: tuple[LevelState, ...] = field(default=())
    retry_after_seconds: int | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-safe view: quantities as decimal strings (never floats), times as ISO 8601 UTC."""
        return {
            "tenant_id": self.tenant_id,
            "resource_type": self.resource_type,
            "quantity": decimal_str(self.quantity),
            "allowed": self.allowed,
            "policy": self.policy.value if self.policy else None,
            "limit": decimal_str(self.limit),
            "used": decimal_str(self.used),
            "remaining": decimal_str(self.remaining),
            "overage": decimal_str(self.overage),
            "resets_at": self.resets_at.isoformat() if self.resets_at else None,
            "reason": self.reason.value if self.reason else None,
            "enforced": self.enforced,
            "replayed": self.replayed,
            "approximate": self.approximate,
            "grant_remaining": decimal_str(self.grant_remaining),
            "from_grants": [{"grant_id": g, "quantity": decimal_str(q)} for g, q in self.grants_used],
            "entity_id": self.entity_id,
            "refused_by": self.refused_by,
            "levels": [level.to_dict() for level in self.levels],
            "retry_after_seconds": self.retry_after_seconds,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object], *, idempotency_key: str | None = None) -> EntitlementCheck:
        """Inverse of `to_dict` (a stored idempotent answer)."""

        def dec(name: str) -> Decimal | None:
            value = data.get(name)
            return None if value is None else Decimal(str(value))

        resets = data.get("resets_at")
        drawn = data.get("from_grants")
        drawn = drawn if isinstance(drawn, list) else []
        policy = data.get("policy")
        reason = data.get("reason")
        levels = data.get("levels")
        levels = levels if isinstance(levels, list) else []
        retry = data.get("retry_after_seconds")
        return cls(
            tenant_id=str(data["tenant_id"]),
            resource_type=str(data["resource_type"]),
            quantity=dec("quantity") or ZERO,
            allowed=bool(data["allowed"]),
            policy=QuotaPolicy(str(policy)) if policy else None,
            limit=dec("limit"),
            used=dec("used") or ZERO,
            remaining=dec("remaining"),
            resets_at=datetime.fromisoformat(str(resets)) if resets else None,
            overage=dec("overage") or ZERO,
            reason=DenyReason(str(reason)) if reason else None,
            enforced=bool(data.get("enforced", True)),
            approximate=bool(data.get("approximate", False)),
            idempotency_key=idempotency_key,
            grants_used=tuple((str(g["grant_id"]), Decimal(str(g["quantity"]))) for g in drawn if isinstance(g, dict)),
            grant_remaining=dec("grant_remaining"),
            entity_id=str(data["entity_id"]) if data.get("entity_id") else None,
            refused_by=str(data["refused_by"]) if data.get("refused_by") else None,
            levels=tuple(LevelState.from_dict(x) for x in levels if isinstance(x, dict)),
            retry_after_seconds=int(str(retry)) if retry is not None else None,
        )


def check_from_counter(
    counter: QuotaCounter,
    quantity: Decimal,
    *,
    allowed: bool,
    enforced: bool = True,
    reason: DenyReason | None = None,
    approximate: bool = False,
    idempotency_key: str | None = None,
    shards_used: tuple[tuple[int, Decimal], ...] = (),
) -> EntitlementCheck:
    """Shape a check from a (whole-quota or scaled) counter view."""
    unlimited = counter.policy is QuotaPolicy.UNLIMITED
    limit = None if unlimited else (counter.total_limit if counter.total_limit is not None else counter.limit)
    remaining = None if unlimited else max(ZERO, counter.remaining)
    # Only a soft quota runs past its limit on purpose; a hard one can only after a downgrade.
    overage = max(ZERO, -counter.remaining) if counter.policy is QuotaPolicy.SOFT else ZERO
    return EntitlementCheck(
        tenant_id=counter.tenant_id,
        resource_type=counter.resource_type,
        quantity=quantity,
        allowed=allowed,
        policy=counter.policy,
        limit=limit,
        used=counter.used,
        remaining=remaining,
        resets_at=counter.period_end,
        overage=overage,
        reason=reason if not allowed else None,
        enforced=enforced,
        approximate=approximate,
        idempotency_key=idempotency_key,
        shards_used=shards_used,
    )


def layout_live(counters: list[QuotaCounter], shards: int, now: datetime) -> bool:
    """Every shard of a `shards`-wide layout is there, active and inside its period at `now`."""
    return len(counters) == shards and all(c.state is CounterState.ACTIVE and c.period_end > now for c in counters)


def combine_shards(counters: list[QuotaCounter]) -> QuotaCounter:
    """The whole quota as one counter: sums of the shards' limits, used and remaining."""
    first = counters[0]
    return _replace(
        first,
        limit=sum((c.limit for c in counters), ZERO),
        used=sum((c.used for c in counters), ZERO),
        remaining=sum((c.remaining for c in counters), ZERO),
        period_end=min(c.period_end for c in counters),
        period_start=min(c.period_start for c in counters),
        shard=0,
        total_limit=first.total_limit,
    )


def counter_after(counter: QuotaCounter, quantity: Decimal) -> QuotaCounter:
    """The counter once a take of `quantity` committed: the hot path's `SET remaining = remaining - :q,
    used = used + :q`, computed here (a transaction returns no item)."""
    return _replace(counter, used=counter.used + quantity, remaining=counter.remaining - quantity)
