"""The operators' grant use cases (create, list, void) on in-memory repositories: what is audited, what is
refused, and that a refusal writes nothing. The draw itself is proven on DynamoDB Local."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing_platform.auth.caller import Actor
from billing_platform.errors import ConflictError, NotFoundError, UnprocessableError
from billing_platform.grants.models import GrantState
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
