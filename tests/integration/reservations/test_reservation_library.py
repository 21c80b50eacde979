"""The reservation faces of the entitlement library (async `async with enforcer.reserve(...)`, blocking
`with enforcer.sync.reserve(...)`, plain reserve/settle/cancel, `require_entitlement(..., settle=...)`)
against moto DynamoDB and the moto usage queue: the quota and the queued usage record show the actual."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest

from billing_platform.enforcer import EntitlementEnforcer, require_entitlement
from billing_platform.entitlements.models import add_months
from billing_platform.entitlements.service import EntitlementService
from billing_platform.errors import ConflictError, QuotaExceededError
from billing_platform.reservations import ReservationState
from billing_platform.reservations.models import usage_record_id
from billing_platform.settings import get_settings

NOW = datetime.now(UTC).replace(microsecond=0)
START = NOW - timedelta(days=3)


class Boom(Exception):
    pass


@pytest.fixture
def enforcer(moto_aws: dict[str, str]) -> EntitlementEnforcer:
    service = EntitlementService(get_settings())
    service.apply_plan("acme", "free", period_start=START, period_end=add_months(START, 1), source_version=1)
    return EntitlementEnforcer(service)


def used(enforcer: EntitlementEnforcer) -> Decimal:
    return enforcer.service.check("acme", "tokens").used


def queued_usage(names: dict[str, str]) -> dict[str, str]:
    """record id -> quantity of every usage record waiting on the usage queue."""
    sqs = boto3.client("sqs")
    found: dict[str, str] = {}
    while True:
        messages = sqs.receive_message(QueueUrl=names["USAGE_QUEUE_URL"], MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return found
        for message in messages:
            for record in json.loads(message["Body"])["records"]:
                found[record["record_id"]] = record["quantity"]
            sqs.delete_message(QueueUrl=names["USAGE_QUEUE_URL"], ReceiptHandle=message["ReceiptHandle"])


def test_async_with_settles_the_recorded_actual(enforcer: EntitlementEnforcer, moto_aws: dict[str, str]) -> None:
    async def work() -> Any:
        async with enforcer.reserve("acme", "tokens", 4000) as r:
            assert used(enforcer) == 4000
            r.settle(1500)
        return r

    hold = asyncio.run(work())
    assert hold.result is not None
    assert (hold.result.state, hold.result.charged, hold.result.given_back) == ("settled", 1500, 2500)
    assert used(enforcer) == 1500
    assert queued_usage(moto_aws) == {usage_record_id(hold.reservation_id): "1500"}


def test_async_with_cancels_when_the_block_raises(enforcer: EntitlementEnforcer, moto_aws: dict[str, str]) -> None:
    holds: list[Any] = []

    async def work() -> None:
        async with enforcer.reserve("acme", "tokens", 4000) as r:
            holds.append(r)
            raise Boom

    with pytest.raises(Boom):
        asyncio.run(work())
    assert holds[0].result.state is ReservationState.CANCELLED
    assert used(enforcer) == 0
    assert queued_usage(moto_aws) == {}


def test_sync_with_settles_the_estimate_when_no_actual_was_recorded(enforcer: EntitlementEnforcer) -> None:
    with enforcer.sync.reserve("acme", "tokens", 300, ttl=120) as r:
        pass
    assert r.result is not None
    assert (r.result.state, r.result.charged) == ("settled", 300)
    assert used(enforcer) == 300


def test_plain_reserve_settle_cancel_on_both_faces(enforcer: EntitlementEnforcer) -> None:
    held = enforcer.sync.reserve("acme", "tokens", "250")
    settled = enforcer.sync.settle(held, 260)
    assert (settled.charged, used(enforcer)) == (Decimal(260), Decimal(260))
    assert enforcer.sync.settle(held, 260).to_dict() == settled.to_dict()  # a retry answers the same
    with pytest.raises(ConflictError):
        enforcer.sync.cancel(held)

    async def async_calls() -> Decimal:
        hold = await enforcer.reserve("acme", "tokens", 100)
        cancelled = await enforcer.cancel(hold)
        return cancelled.given_back

    assert asyncio.run(async_calls()) == 100
    assert used(enforcer) == 260
    with pytest.raises(QuotaExceededError):
        enforcer.sync.reserve("acme", "tokens", 10_000)
    assert used(enforcer) == 260


def test_require_entitlement_with_settle_charges_what_the_call_used(
    enforcer: EntitlementEnforcer, moto_aws: dict[str, str]
) -> None:
    @require_entitlement("tokens", quantity=4000, enforcer=enforcer, settle=lambda reply: reply["usage"])
    def generate(tenant_id: str, prompt: str) -> dict[str, Any]:
        assert used(enforcer) == 4000  # the estimate is held while the call runs
        return {"text": prompt.upper(), "usage": len(prompt) * 100}

    @require_entitlement("tokens", quantity=4000, enforcer=enforcer, settle=lambda reply: reply["usage"])
    async def generate_async(tenant_id: str, prompt: str) -> dict[str, Any]:
        return {"text": prompt, "usage": 7}

    @require_entitlement("tokens", quantity=4000, enforcer=enforcer, settle=lambda reply: reply["usage"])
    def failing(tenant_id: str) -> dict[str, Any]:
        raise Boom

    assert generate("acme", "hello")["text"] == "HELLO"
    assert used(enforcer) == 500
    assert asyncio.run(generate_async("acme", "x"))["usage"] == 7
    assert used(enforcer) == 507
    with pytest.raises(Boom):
        failing("acme")
    assert used(enforcer) == 507
    assert sorted(queued_usage(moto_aws).values()) == ["500", "7"]


def test_a_hold_shows_what_is_held_and_what_became_of_it(enforcer: EntitlementEnforcer) -> None:
    with enforcer.sync.reserve("acme", "tokens", 40, ttl=120) as hold:
        held = repr(hold)
        hold.settle(25)
        pending = repr(hold)
    assert held.startswith(f"<SyncReservationHold {hold.reservation_id} tenant=acme tokens estimate=40 held due_at=")
    assert pending.endswith("actual=25 (settled when the block ends)>")
    assert (
        repr(hold) == f"<SyncReservationHold {hold.reservation_id} tenant=acme tokens estimate=40 settled "
        "charged=25 given_back=15>"
    )
