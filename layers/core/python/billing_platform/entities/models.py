"""Entities under a tenant (a user, a team, an API key, a workspace: any id the tenant chooses) and the
limits they carry per resource. Values only, no I/O.

An entity has at most one parent and sits at most `MAX_DEPTH` levels under its tenant; its parent is fixed
when it is created, so the chain of ancestors a take walks never changes while the entity exists (a cycle
cannot be built: a parent must exist before its child). A limit is an absolute amount per billing period,
or a share (percent) of what the parent may use, and optionally caps short windows (`Window`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from billing_platform.catalog.models import Window

MAX_DEPTH = 3
ENTITY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$"
ENTITY_ID_MAX_LENGTH = 128
MAX_SHARE_PERCENT = Decimal(100)
_ENTITY_ID = re.compile(ENTITY_ID_PATTERN)
# The level name of the tenant's own quota in answers and refusals; an entity's level is `entity:<id>`.
TENANT_LEVEL = "tenant"


def level_name(entity_id: str) -> str:
    return f"entity:{entity_id}"


def valid_entity_id(entity_id: str) -> bool:
    return bool(_ENTITY_ID.match(entity_id))


class LimitKind(StrEnum):
    ABSOLUTE = "absolute"  # `amount` per billing period
    SHARE = "share"  # `share_percent` of the parent's limit (the nearest limited ancestor's, else the plan's)


@dataclass(frozen=True)
class Entity:
    """An entity of a tenant. `ancestors` are its parent's chain, nearest first (empty at the top);
    `limited` the resources it carries a limit for (a take adds a level only for those)."""

    tenant_id: str
    entity_id: str
    created_at: datetime
    parent_id: str | None = None
    ancestors: tuple[str, ...] = ()
    kind: str | None = None
    name: str | None = None
    limited: frozenset[str] = frozenset()
    children: int = 0
    keys: int = 0

    @property
    def depth(self) -> int:
        """1 for an entity directly under its tenant, up to MAX_DEPTH."""
        return len(self.ancestors) + 1

    @property
    def chain(self) -> tuple[str, ...]:
        """This entity then its ancestors, nearest first: the levels a take walks below the tenant."""
        return (self.entity_id, *self.ancestors)

    def to_dict(self) -> dict[str, object]:
        return {
            "tenant_id": self.tenant_id,
            "id": self.entity_id,
            "parent_id": self.parent_id,
            "kind": self.kind,
            "name": self.name,
            "depth": self.depth,
            "ancestors": list(self.ancestors),
            "limited_resources": sorted(self.limited),
            "children": self.children,
            "bound_keys": self.keys,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class LimitTerms:
    """What a tenant sets for one entity and resource: a period amount or a share, and windows."""

    kind: LimitKind
    amount: Decimal | None = None
    share_percent: Decimal | None = None
    windows: dict[Window, Decimal] = field(default_factory=dict)

    def resolve(self, basis: Decimal | None) -> Decimal:
        """The period limit these terms give against `basis` (what the parent may use)."""
        if self.kind is LimitKind.ABSOLUTE:
            assert self.amount is not None
            return self.amount
        assert self.share_percent is not None
        assert basis is not None
        return (basis * self.share_percent / MAX_SHARE_PERCENT).quantize(Decimal("0.000001"))


@dataclass(frozen=True)
class LimitWrite:
    """A limit to store: its terms, the period limit they resolve to now, and the period it starts in."""

    tenant_id: str
    entity_id: str
    resource_type: str
    terms: LimitTerms
    limit: Decimal
    period_start: datetime
    period_end: datetime


@dataclass(frozen=True)
class EntityLimit:
    """An entity's limit on one resource and its counter for the current period (and windows). `limit` is
    the resolved period amount the counter enforces (for a share: at the time the terms were set)."""

    tenant_id: str
    entity_id: str
    resource_type: str
    terms: LimitTerms
    limit: Decimal
    used: Decimal
    remaining: Decimal
    period_end: datetime | None
    window_state: dict[Window, tuple[int, Decimal]] = field(default_factory=dict)  # window -> (end, used)

    def to_dict(self) -> dict[str, object]:
        return {
            "tenant_id": self.tenant_id,
            "entity_id": self.entity_id,
            "resource_type": self.resource_type,
            "kind": self.terms.kind.value,
            "amount": str(self.terms.amount) if self.terms.amount is not None else None,
            "share_percent": str(self.terms.share_percent) if self.terms.share_percent is not None else None,
            "windows": {w.value: str(v) for w, v in self.terms.windows.items()},
            "limit": str(self.limit),
            "used": str(self.used),
            "remaining": str(self.remaining),
            "period_end": self.period_end.isoformat() if self.period_end else None,
        }
