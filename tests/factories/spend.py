"""Services over DynamoDB Local for the spend-cap proofs and bench: each `service()` is one simulated
container (its own caches) on the shared tables, reading `spend_plans.json` (three priced resources:
graduated tiers with a flat amount past included units, volume tiers, a per-unit hard quota)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import boto3
from botocore.config import Config

from billing_platform.auth.caller import Actor
from billing_platform.dynamodb import utc_now
from billing_platform.entities.repository import EntityRepository
from billing_platform.entities.service import EntityService
from billing_platform.entitlements.service import EntitlementService
from billing_platform.reservations import Reservation, ReservationService
from billing_platform.reservations.repository import ReservationRepository
from billing_platform.settings import Settings
from billing_platform.spend.models import SpendCapRequest
from tests.factories.services import entitlement_service

CATALOG_PATH = Path(__file__).with_name("spend_plans.json")
OPERATOR = Actor(principal_id="operator:test")


class SpendHarness:
    def __init__(self, names: dict[str, str], endpoint_url: str, *, threads: int = 40) -> None:
        self.client = boto3.client(
            "dynamodb",
            endpoint_url=endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(max_pool_connections=threads + 8, retries={"mode": "standard", "max_attempts": 8}),
        )
        self.settings = Settings(
            billing_table_name=names["BILLING_TABLE_NAME"],
            usage_table_name=names["USAGE_TABLE_NAME"],
            plan_catalog_path=str(CATALOG_PATH),
        )
        self.catalog = self.settings.catalog
        self.metered: dict[str, Decimal] = {}

    def service(self, seed: int = 7, clock: Callable[[], datetime] = utc_now) -> EntitlementService:
        return entitlement_service(self.catalog, client=self.client, settings=self.settings, clock=clock, seed=seed)

    def reservations(self, service: EntitlementService) -> ReservationService:
        """Reservations over `service`'s container; settles are metered into `self.metered`."""
        return ReservationService(
            self.settings,
            entitlements=service,
            repository=ReservationRepository(self.settings, self.client),
            meter=self,
        )

    def entities(self) -> EntityService:
        return EntityService(
            self.settings, repository=EntityRepository(self.settings, self.client), plans=self.service()
        )

    def send(self, reservation: Reservation) -> None:
        """The settles' meter: the charged amounts by reservation id (a re-send overwrites the same entry)."""
        self.metered[reservation.reservation_id] = reservation.charged

    def start(self, tenant_id: str, cap: SpendCapRequest | None) -> None:
        """The tenant on the metered plan, in a period that ends in 20 days, with `cap` set."""
        now = datetime.now(UTC).replace(microsecond=0)
        service = self.service()
        service.apply_plan(
            tenant_id,
            "metered",
            period_start=now - timedelta(days=10),
            period_end=now + timedelta(days=20),
            source_version=1,
        )
        if cap is not None:
            service.spend_caps.set_cap(tenant_id, cap, actor=OPERATOR)
