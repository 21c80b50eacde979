"""Grant models and the pure arithmetic of drawing a take over a quota and a tenant's grants.

A grant is an amount of one resource given to a tenant on top of its plan (by an operator, or bought
through a Stripe top-up price), with an optional expiry and a priority. A take is served by the period
quota first, then by live grants in `draw_order` (priority, lower first; then earliest expiry; then
oldest). A grant counts while `now < valid_until`: at its expiry instant it stops counting and its
`remaining` is frozen as the expired balance. No I/O here.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

from billing_platform.instants import from_epoch
from billing_platform.quantities import ZERO, decimal_str

GRANT_ID_PATTERN = r"^grt_[0-9a-f]{16}$"
DEFAULT_PRIORITY = 50
MIN_PRIORITY, MAX_PRIORITY = 0, 100
# The expiry index spreads one day's expiries over this many GSI partitions (see grant-item contract).
EXPIRY_BUCKETS = 16
# A take spans at most this many grants: a transaction holds at most 100 items, of which up to 64 can be
# counter shards; a tenant with more live grants than this is served from the first ones in order.
MAX_GRANTS_PER_TAKE = 32


class GrantState(StrEnum):
    ACTIVE = "active"
    VOIDED = "voided"


class GrantSource(StrEnum):
    OPERATOR = "operator"
    STRIPE_CHECKOUT = "stripe_checkout"
    STRIPE_INVOICE = "stripe_invoice"


def new_grant_id() -> str:
    """A random grant id (operator grants)."""
    return f"grt_{secrets.token_hex(8)}"


def grant_id_for_source(source_id: str) -> str:
    """The grant id a Stripe object line always maps to: a retried or re-ordered webhook derives the same
    id, so the conditional put that creates the grant succeeds once."""
    return f"grt_{hashlib.sha256(source_id.encode()).hexdigest()[:16]}"


def expiry_bucket(tenant_id: str, grant_id: str) -> int:
    return int(hashlib.sha256(f"{tenant_id}#{grant_id}".encode()).hexdigest(), 16) % EXPIRY_BUCKETS


@dataclass(frozen=True)
class Grant:
    """One grant item (`GRANTS#<tenant>` / `GRANT#<resource>#<grant_id>`).
    Invariant: `used + remaining + voided_amount == amount`; `remaining` only ever decreases."""

    tenant_id: str
    resource_type: str
    grant_id: str
    amount: Decimal
    remaining: Decimal
    used: Decimal
    priority: int
    valid_until: datetime | None
    state: GrantState
    source: GrantSource
    source_id: str
    created_at: datetime
    created_by: str
    price_id: str | None = None
    reason: str | None = None
    voided_amount: Decimal = ZERO
    voided_at: datetime | None = None
    voided_by: str | None = None

    def live(self, now: datetime) -> bool:
        """Counts toward a take at `now`: active, not expired, something left."""
        return (
            self.state is GrantState.ACTIVE
            and self.remaining > 0
            and (self.valid_until is None or self.valid_until > now)
        )

    def expired(self, now: datetime) -> bool:
        return self.valid_until is not None and self.valid_until <= now

    def status(self, now: datetime) -> str:
        """active | depleted | expired | voided (what the entitlements view shows)."""
        if self.state is GrantState.VOIDED:
            return "voided"
        if self.remaining <= 0:
            return "depleted"
        return "expired" if self.expired(now) else "active"

    def to_dict(self, now: datetime) -> dict[str, object]:
        return {
            "grant_id": self.grant_id,
            "tenant_id": self.tenant_id,
            "resource_type": self.resource_type,
            "amount": decimal_str(self.amount),
            "remaining": decimal_str(self.remaining),
            "used": decimal_str(self.used),
            "voided_amount": decimal_str(self.voided_amount),
            "priority": self.priority,
            "expires_at": self.valid_until.isoformat() if self.valid_until else None,
            "status": self.status(now),
            "source": self.source.value,
            "source_id": self.source_id,
            "price_id": self.price_id,
            "reason": self.reason,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "voided_at": self.voided_at.isoformat() if self.voided_at else None,
            "voided_by": self.voided_by,
        }


def draw_order(grant: Grant) -> tuple[int, int, str, str]:
    """Priority (lower first), then earliest expiry (never-expiring last), then oldest, then id."""
    expiry = int(grant.valid_until.timestamp()) if grant.valid_until else 2**62
    return grant.priority, expiry, grant.created_at.isoformat(), grant.grant_id


@dataclass(frozen=True)
class DrawPlan:
    """How a take is served: `from_quota` off the period quota (all it had left when smaller than the
    take), then `from_grants` in draw order, each grant but the last emptied."""

    quantity: Decimal
    from_quota: Decimal
    from_grants: tuple[tuple[Grant, Decimal], ...]

    @property
    def grant_total(self) -> Decimal:
        return sum((q for _g, q in self.from_grants), ZERO)

    def drawn(self) -> tuple[tuple[str, Decimal], ...]:
        """(grant id, quantity) in draw order: what an answer or a reservation records."""
        return tuple((grant.grant_id, take) for grant, take in self.from_grants)


def plan_draw(quota_remaining: Decimal, grants: list[Grant], quantity: Decimal, now: datetime) -> DrawPlan | None:
    """Serve `quantity` from the quota's `remaining` first, then live grants in draw order. None when the
    quota and the live grants together are short (the only case a take is denied)."""
    from_quota = min(quantity, max(ZERO, quota_remaining))
    left = quantity - from_quota
    takes: list[tuple[Grant, Decimal]] = []
    for grant in sorted((g for g in grants if g.live(now)), key=draw_order)[:MAX_GRANTS_PER_TAKE]:
        if left <= 0:
            break
        take = min(left, grant.remaining)
        takes.append((grant, take))
        left -= take
    if left > 0:
        return None
    return DrawPlan(quantity=quantity, from_quota=from_quota, from_grants=tuple(takes))


def live_balance(grants: list[Grant], now: datetime) -> Decimal:
    """What the live grants hold together at `now`."""
    return sum((g.remaining for g in grants if g.live(now)), ZERO)


def epoch_or_none(value: int | None) -> datetime | None:
    return from_epoch(value) if value is not None else None


def utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: times are timezone-aware UTC")
    return moment.astimezone(UTC)
