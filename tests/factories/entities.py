"""An organisation under one tenant on DynamoDB Local, for the entity take's tests and proofs: a catalog,
a clock the test moves, services built over one client (one per simulated container), and the org itself
(two teams of four users, a key under the first user) with limits at every level."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
from botocore.config import Config

from billing_platform.audit.log import AuditEntry
from billing_platform.auth.caller import Actor
from billing_platform.catalog.models import Catalog, Window, parse_catalog
from billing_platform.entities.models import LimitKind, LimitTerms
from billing_platform.entities.repository import EntityRepository, limit_key
from billing_platform.entities.service import EntityService
from billing_platform.entitlements.repository import counter_key
from billing_platform.entitlements.service import EntitlementService
from billing_platform.grants.models import Grant, GrantSource, GrantState
from billing_platform.grants.repository import GrantRepository
from billing_platform.reservations.models import Reservation
from billing_platform.reservations.repository import ReservationRepository
from billing_platform.reservations.service import ReservationService
from billing_platform.settings import Settings
from tests.factories.catalogs import catalog_json, plan, quota
from tests.factories.services import entitlement_service

CATALOG = catalog_json(
    {
        "org": plan(quota("4000", resource_type="tokens"), name="Org"),
        "open": plan(quota(None, resource_type="tokens"), name="Open"),
        "org-large": plan(quota("8000", resource_type="tokens"), name="Org large"),
        "org-windowed": plan(quota("4000", resource_type="tokens", windows={"minute": "2400"}), name="Org per minute"),
        "windowed": plan(quota("4000", resource_type="tokens", windows={"minute": "300"}), name="Windowed"),
        "windowed-wide": plan(quota("4000", resource_type="tokens", windows={"minute": "500"}), name="Windowed wide"),
    },
    resource_types=("tokens",),
)
OPERATOR = Actor("operator:test")
TEAMS = {"team-a": [f"u{i}" for i in range(4)], "team-b": [f"u{i}" for i in range(4, 8)]}
KEY = "key-k0"  # an API key's own entity, under u0


class Clock:
    """Real time plus an offset the test moves (every condition compares against it)."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._offset += delta


class NotedMeter:
    """A meter that notes each settled reservation's charged amount (once per reservation)."""

    def __init__(self) -> None:
        self.charged: dict[str, Decimal] = {}
        self._lock = threading.Lock()

    def send(self, reservation: Reservation) -> None:
        with self._lock:
            self.charged[reservation.reservation_id] = reservation.charged


@dataclass(frozen=True)
class OrgLimits:
    """The org's limits on tokens: team-a absolute, team-b a share of the plan quota, users absolute or a
    share of their team, the key a budget; team-b also per minute."""

    team_a: Decimal = Decimal(1800)
    team_b_share: Decimal = Decimal(40)  # % of the 4000 plan quota: 1600
    user: Decimal = Decimal(600)
    user_share_b: Decimal = Decimal(35)  # % of team-b: 560
    key_budget: Decimal = Decimal(150)
    team_b_minute: Decimal = Decimal(400)


class Org:
    """Services over DynamoDB Local for one tenant's organisation."""

    def __init__(
        self, names: dict[str, str], endpoint_url: str, *, threads: int = 40, tenant_id: str = "t-org"
    ) -> None:
        self.client = boto3.client(
            "dynamodb",
            endpoint_url=endpoint_url,
            region_name="us-east-1",
            config=Config(max_pool_connections=threads + 8, retries={"mode": "standard", "max_attempts": 8}),
        )
        self.settings = Settings(billing_table_name=names["BILLING_TABLE_NAME"])
        self.catalog: Catalog = parse_catalog(CATALOG)
        self.clock = Clock()
        self.tenant_id = tenant_id
        self.meter = NotedMeter()

    def entitlements(self, seed: int = 7) -> EntitlementService:
        return entitlement_service(
            self.catalog, client=self.client, settings=self.settings, clock=self.clock, seed=seed
        )

    def reservations(self, seed: int = 7) -> ReservationService:
        """Reservations over the same tables; settled usage is noted in `self.metered` (no queue)."""
        return ReservationService(
            self.settings,
            entitlements=self.entitlements(seed),
            repository=ReservationRepository(self.settings, self.client),
            meter=self.meter,
            clock=self.clock,
        )

    def entities(self) -> EntityService:
        return EntityService(
            self.settings, repository=EntityRepository(self.settings, self.client), plans=self.entitlements()
        )

    def apply(self, plan: str = "org", *, left: timedelta = timedelta(days=20)) -> None:
        now = self.clock().replace(microsecond=0)
        self.entitlements().apply_plan(
            self.tenant_id, plan, period_start=now + left - timedelta(days=30), period_end=now + left, source_version=1
        )

    def build(self, limits: OrgLimits | None = None) -> None:
        """Two teams of four users and a key entity under u0, with limits at every level."""
        limits = limits or OrgLimits()
        svc, t = self.entities(), self.tenant_id
        for team, users in TEAMS.items():
            svc.create(t, team, actor=OPERATOR, kind="team")
            for user in users:
                svc.create(t, user, actor=OPERATOR, parent_id=team, kind="user")
        svc.create(t, KEY, actor=OPERATOR, parent_id="u0", kind="key")
        svc.set_limit(t, "team-a", "tokens", LimitTerms(LimitKind.ABSOLUTE, amount=limits.team_a), actor=OPERATOR)
        svc.set_limit(
            t,
            "team-b",
            "tokens",
            LimitTerms(
                LimitKind.SHARE, share_percent=limits.team_b_share, windows={Window.MINUTE: limits.team_b_minute}
            ),
            actor=OPERATOR,
        )
        for user in TEAMS["team-a"]:
            svc.set_limit(t, user, "tokens", LimitTerms(LimitKind.ABSOLUTE, amount=limits.user), actor=OPERATOR)
        for user in TEAMS["team-b"]:
            terms = LimitTerms(LimitKind.SHARE, share_percent=limits.user_share_b)
            svc.set_limit(t, user, "tokens", terms, actor=OPERATOR)
        svc.set_limit(t, KEY, "tokens", LimitTerms(LimitKind.ABSOLUTE, amount=limits.key_budget), actor=OPERATOR)

    def add_grant(self, amount: Decimal, *, grant_id: str = "g-1", priority: int = 50) -> str:
        """A live operator grant of `amount` tokens for the tenant (no expiry)."""
        now = self.clock().replace(microsecond=0)
        grant = Grant(
            tenant_id=self.tenant_id,
            resource_type="tokens",
            grant_id=grant_id,
            amount=amount,
            remaining=amount,
            used=Decimal(0),
            priority=priority,
            valid_until=None,
            state=GrantState.ACTIVE,
            source=GrantSource.OPERATOR,
            source_id=grant_id,
            created_at=now - timedelta(minutes=5),
            created_by="operator:test",
        )
        audit = AuditEntry(tenant_id=self.tenant_id, actor="operator:test", action="grant.create", target=grant_id)
        assert GrantRepository(self.settings, self.client).create([grant], audit)
        return grant_id

    def grant_remaining(self, grant_id: str = "g-1") -> Decimal:
        grants = GrantRepository(self.settings, self.client).list(self.tenant_id, "tokens")
        return next(g.remaining for g in grants if g.grant_id == grant_id)

    def item(self, key: dict[str, Any]) -> dict[str, Any]:
        return dict(
            self.client.get_item(TableName=self.settings.billing_table_name, Key=key, ConsistentRead=True)["Item"]
        )

    def entity_used(self, entity_id: str) -> tuple[Decimal, Decimal]:
        """(used, limit) of an entity's tokens limit in its current period."""
        item = self.item(limit_key(self.tenant_id, entity_id, "tokens"))
        return Decimal(item["used"]["N"]), Decimal(item["limit"]["N"])

    def tenant_used(self) -> tuple[Decimal, Decimal]:
        item = self.item(counter_key(self.tenant_id, "tokens"))
        return Decimal(item["used"]["N"]), Decimal(item["limit"]["N"])


def chain_of(entity_id: str) -> list[str]:
    """The entity and its ancestors, nearest first (the org built by `Org.build`)."""
    if entity_id == KEY:
        return [KEY, "u0", "team-a"]
    if entity_id in TEAMS:
        return [entity_id]
    team = next(t for t, users in TEAMS.items() if entity_id in users)
    return [entity_id, team]
