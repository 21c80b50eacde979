"""The operators' grant use cases (create, list, void) on in-memory repositories: what is audited, what is
refused, that a refusal writes nothing, and that a void racing a draw voids what the draw left. The draw
itself and the races' atomicity are proven on DynamoDB Local."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing_platform.audit.log import AuditEntry
from billing_platform.auth.caller import Actor
from billing_platform.errors import CatalogError, ConflictError, NotFoundError, UnprocessableError
from billing_platform.grants.models import Grant, GrantState
from billing_platform.grants.schemas import CreateGrantRequest
from billing_platform.grants.service import GrantService
from billing_platform.settings import Settings
from tests.factories.fake_repositories import FakeGrantRepository

OPERATOR = Actor("operator-1", request_id="req-1")


@pytest.fixture
def repository() -> FakeGrantRepository:
    return FakeGrantRepository()


@pytest.fixture
def service(repository: FakeGrantRepository) -> GrantService:
    return GrantService(
        Settings(billing_table_name="billing"),
        tenant_known=lambda tenant_id: tenant_id == "t1",
        repository=repository,  # type: ignore[arg-type]
    )


def request(amount: str = "50", **fields: object) -> CreateGrantRequest:
    return CreateGrantRequest.model_validate({"resource_type": "api_calls", "amount": amount, **fields})


def test_a_grant_is_created_whole_and_audited(service: GrantService, repository: FakeGrantRepository) -> None:
    grant = service.create("t1", request("50"), actor=OPERATOR)

    assert (grant.amount, grant.remaining, grant.used, grant.state) == (50, 50, 0, GrantState.ACTIVE)
    assert service.list("t1") == [grant]
    assert [a.action for a in repository.audits] == ["grant.create"]


@pytest.mark.parametrize(
    ("tenant_id", "body", "error"),
    [
        ("t-unknown", request(), NotFoundError),
        ("t1", request(expires_at=datetime.now(UTC) - timedelta(minutes=1)), UnprocessableError),
    ],
)
def test_a_refused_grant_writes_nothing(
    service: GrantService, repository: FakeGrantRepository, tenant_id: str, body: CreateGrantRequest, error: type
) -> None:
    with pytest.raises(error):
        service.create(tenant_id, body, actor=OPERATOR)
    assert (repository.grants, repository.audits) == ([], [])


def test_a_void_takes_the_remainder_once(service: GrantService, repository: FakeGrantRepository) -> None:
    grant = service.create("t1", request("30"), actor=OPERATOR)

    voided = service.void("t1", grant.grant_id, actor=OPERATOR)

    assert (voided.state, voided.remaining, voided.voided_amount) == (GrantState.VOIDED, 0, Decimal(30))
    with pytest.raises(ConflictError):
        service.void("t1", grant.grant_id, actor=OPERATOR)
    assert [a.action for a in repository.audits] == ["grant.create", "grant.void"]


class DrawnBetween(FakeGrantRepository):
    """A draw lands between the void's read and its write, once: the void's condition (remaining as seen)
    fails and the use case must read again."""

    def __init__(self, drawn: Decimal) -> None:
        super().__init__()
        self.drawn = drawn

    def void(self, grant: Grant, actor: str, now: datetime, audit: AuditEntry) -> bool:
        if self.drawn:
            stored = self.find(grant.tenant_id, grant.grant_id)
            assert stored is not None
            drawn = replace(stored, remaining=stored.remaining - self.drawn, used=stored.used + self.drawn)
            self.grants[self.grants.index(stored)] = drawn
            self.drawn = Decimal(0)
        return super().void(grant, actor, now, audit)


def test_a_void_raced_by_a_draw_voids_what_is_left_after_it_and_audits_that() -> None:
    repository = DrawnBetween(Decimal(12))
    service = GrantService(
        Settings(billing_table_name="billing"),
        tenant_known=lambda tenant_id: True,
        repository=repository,  # type: ignore[arg-type]
    )
    grant = service.create("t1", request("30"), actor=OPERATOR)

    voided = service.void("t1", grant.grant_id, actor=OPERATOR)

    assert (voided.voided_amount, voided.remaining) == (Decimal(18), 0)
    stored = repository.find("t1", grant.grant_id)
    assert stored is not None
    assert (stored.used, stored.voided_amount) == (Decimal(12), Decimal(18))
    void_audit = repository.audits[-1]
    assert (void_audit.action, len(repository.audits)) == ("grant.void", 2)
    assert void_audit.before is not None
    assert void_audit.before["remaining"] == "18"


def test_a_void_of_an_unknown_grant_is_a_404_and_writes_nothing(
    service: GrantService, repository: FakeGrantRepository
) -> None:
    with pytest.raises(NotFoundError):
        service.void("t1", "gr_missing", actor=OPERATOR)
    assert repository.audits == []


def test_grants_are_listed_per_tenant_and_resource_and_an_unknown_resource_is_refused(
    service: GrantService,
) -> None:
    calls = service.create("t1", request("5"), actor=OPERATOR)
    tokens = service.create("t1", CreateGrantRequest(resource_type="tokens", amount=Decimal(7)), actor=OPERATOR)

    assert service.list("t1", "api_calls") == [calls]
    assert service.list("t1", "tokens") == [tokens]
    assert service.list("t2") == []
    with pytest.raises(CatalogError):
        service.list("t1", "no_such_resource")


def test_a_colliding_grant_id_is_a_conflict_and_writes_nothing(
    service: GrantService, repository: FakeGrantRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = service.create("t1", request("5"), actor=OPERATOR)
    monkeypatch.setattr("billing_platform.grants.service.new_grant_id", lambda: first.grant_id)

    with pytest.raises(ConflictError):
        service.create("t1", request("9"), actor=OPERATOR)
    assert (repository.grants, len(repository.audits)) == ([first], 1)
