"""The layer's services as tests build them: one function per service, defaults for what a test does not
care about, so a constructor change is made here once.

`entitlement_service` wires the real repository (a DynamoDB client from the test: moto or DynamoDB
Local) or, with `fake=True`, the in-memory `FakeEntitlementRepository` (tests/factories/fake_repositories.py)."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from billing_platform.catalog.models import Catalog
from billing_platform.entitlements.repository import EntitlementRepository
from billing_platform.entitlements.service import EntitlementService
from billing_platform.settings import Settings
from tests.factories.fake_repositories import FakeEntitlementRepository, FakeGrantRepository


def utc_now() -> datetime:
    return datetime.now(UTC)


def entitlement_service(
    catalog: Catalog | None = None,
    *,
    client: Any = None,
    settings: Settings | None = None,
    clock: Callable[[], datetime] = utc_now,
    seed: int = 7,
    **options: Any,
) -> EntitlementService:
    """An `EntitlementService` over the billing table `settings` names (default: "billing"), through
    `client` (None: the container's client), with a seeded shard choice; `catalog` None: the settings'."""
    settings = settings or Settings(billing_table_name="billing")
    return EntitlementService(
        settings,
        repository=EntitlementRepository(settings, client),
        catalog=catalog,
        clock=clock,
        rng=random.Random(seed),
        **options,
    )


def fake_entitlement_service(
    catalog: Catalog, *, clock: Callable[[], datetime] = utc_now, seed: int = 7, enforcing: bool = True
) -> tuple[EntitlementService, FakeEntitlementRepository, FakeGrantRepository]:
    """An `EntitlementService` on in-memory repositories, and those repositories (to arrange and inspect)."""
    repository = FakeEntitlementRepository(clock=clock)
    grants = FakeGrantRepository()
    service = EntitlementService(
        Settings(billing_table_name="billing", entitlement_check_enabled=enforcing),
        repository=repository,  # type: ignore[arg-type]
        catalog=catalog,
        clock=clock,
        rng=random.Random(seed),
        grants=grants,  # type: ignore[arg-type]
    )
    return service, repository, grants
