"""The billing events, their detail schema and their stable ids. Pure data: no I/O.

Every event is published to the bus with `source = resources.EVENT_BUS.source`, the detail-type below and
a detail holding at least `event_id`, `tenant_id`, `resource_type`, `used`, `limit`, `period`,
`occurred_at`. Amounts are decimal strings, times ISO 8601 UTC. `event_id` is derived from what the event is
about (never random), so a re-publish after a crash carries the same id and a consumer dedupes on it.

| detail-type | once per | extra fields |
|---|---|---|
| billing.quota.threshold_crossed | tenant, resource, period, limit, threshold | threshold_percent, plan_id, policy |
| billing.grant.depleted | grant | grant_id, remaining ("0"), priority, source |
| billing.grant.expired (with a balance) | grant | grant_id, remaining (the balance forfeited), priority, source |
| billing.spend.threshold_crossed | tenant, period, cap, threshold | threshold_percent, spend, cap, currency |

A spend event's `resource_type` is `spend`, its `used` the period's spend and its `limit` the cap (minor units).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billing_platform import resources


def stable_event_id(*parts: object) -> str:
    """`evt_` + 32 hex of a hash of what the event is about: the same facts always give the same id."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()
    return f"evt_{digest[:32]}"


def amount(value: Decimal) -> str:
    """A quantity as the API writes it: a plain decimal string, no exponent, no trailing zeros."""
    text = format(value.normalize(), "f")
    return text if text not in ("-0",) else "0"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class BillingEvent:
    """One event as published. `marker_sk` names it in its tenant's event ledger (EVENTS#<tenant>)."""

    event_id: str
    detail_type: str
    tenant_id: str
    marker_sk: str
    detail: dict[str, Any]
    # How long the ledger must remember it: past the last moment a stream record could bring it back.
    remember_until: datetime

    def detail_json(self) -> str:
        return json.dumps(self.detail, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True)
class ThresholdCrossing:
    """A quota of one tenant reached `percent` % of `limit` in the period starting at `period_start`."""

    tenant_id: str
    resource_type: str
    percent: Decimal
    used: Decimal
    limit: Decimal
    period_start: datetime
    period_end: datetime
    plan_id: str
    policy: str
    occurred_at: datetime

    def to_event(self, remember_until: datetime) -> BillingEvent:
        # The limit is part of the identity: a plan change mid-period is a new quota with its own alerts.
        event_id = stable_event_id(
            resources.QUOTA_THRESHOLD_CROSSED,
            self.tenant_id,
            self.resource_type,
            int(self.period_start.timestamp()),
            amount(self.limit),
            amount(self.percent),
        )
        return BillingEvent(
            event_id=event_id,
            detail_type=resources.QUOTA_THRESHOLD_CROSSED,
            tenant_id=self.tenant_id,
            marker_sk=(
                f"THRESHOLD#{self.resource_type}#{int(self.period_start.timestamp())}"
                f"#{amount(self.limit)}#{amount(self.percent)}"
            ),
            detail={
                "event_id": event_id,
                "tenant_id": self.tenant_id,
                "resource_type": self.resource_type,
                "threshold_percent": amount(self.percent),
                "used": amount(self.used),
                "limit": amount(self.limit),
                "period": {"start": iso(self.period_start), "end": iso(self.period_end)},
                "plan_id": self.plan_id,
                "policy": self.policy,
                "occurred_at": iso(self.occurred_at),
            },
            remember_until=remember_until,
        )


@dataclass(frozen=True)
class SpendCrossing:
    """A tenant's spend reached `percent` % of its cap in the period ending `period_end`."""

    tenant_id: str
    percent: Decimal
    spend: Decimal
    cap: Decimal
    currency: str
    period_end: datetime
    occurred_at: datetime

    def to_event(self, remember_until: datetime) -> BillingEvent:
        end = int(self.period_end.timestamp())
        event_id = stable_event_id(
            resources.SPEND_THRESHOLD_CROSSED, self.tenant_id, end, amount(self.cap), amount(self.percent)
        )
        return BillingEvent(
            event_id=event_id,
            detail_type=resources.SPEND_THRESHOLD_CROSSED,
            tenant_id=self.tenant_id,
            marker_sk=f"SPEND#{end}#{amount(self.cap)}#{amount(self.percent)}",
            detail={
                "event_id": event_id,
                "tenant_id": self.tenant_id,
                "resource_type": "spend",
                "threshold_percent": amount(self.percent),
                "used": amount(self.spend),
                "limit": amount(self.cap),
                "spend": amount(self.spend),
                "cap": amount(self.cap),
                "currency": self.currency,
                "period": {"end": iso(self.period_end)},
                "occurred_at": iso(self.occurred_at),
            },
            remember_until=remember_until,
        )


@dataclass(frozen=True)
class GrantSnapshot:
    """The fields of a grant item (`grants.models.Grant`: GRANTS#<tenant> / GRANT#<resource>#<id>) an event
    needs, read leniently from a stream image without loading the grants package (quota_events' cold start)."""

    tenant_id: str
    resource_type: str
    grant_id: str
    amount: Decimal
    remaining: Decimal
    used: Decimal
    priority: int
    state: str
    source: str
    created_at: datetime | None
    valid_until: datetime | None

    def event(self, detail_type: str, occurred_at: datetime, remember_until: datetime) -> BillingEvent:
        kind = "depleted" if detail_type == resources.GRANT_DEPLETED else "expired"
        event_id = stable_event_id(detail_type, self.tenant_id, self.grant_id)
        return BillingEvent(
            event_id=event_id,
            detail_type=detail_type,
            tenant_id=self.tenant_id,
            marker_sk=f"GRANT#{self.grant_id}#{kind}",
            detail={
                "event_id": event_id,
                "tenant_id": self.tenant_id,
                "resource_type": self.resource_type,
                "grant_id": self.grant_id,
                # A grant is its own small quota: `limit` is what was granted, `used` what was drawn.
                "used": amount(self.used),
                "limit": amount(self.amount),
                "remaining": amount(self.remaining),
                "period": {
                    "start": iso(self.created_at) if self.created_at else None,
                    "end": iso(self.valid_until) if self.valid_until else None,
                },
                "priority": self.priority,
                "source": self.source,
                "occurred_at": iso(occurred_at),
            },
            remember_until=remember_until,
        )
