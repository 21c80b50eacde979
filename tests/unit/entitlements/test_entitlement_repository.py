"""Repository behaviour DynamoDB Local cannot reproduce: a single-item write colliding with a running
transaction (TransactionConflictException, which botocore's standard retry mode does not retry)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import boto3
import pytest
from botocore.stub import ANY, Stubber

from billing_platform.entitlements.repository import EntitlementRepository, counter_key
from billing_platform.settings import Settings

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
ITEM = {
    "pk": {"S": "QUOTA#acme#executions"},
    "sk": {"S": "COUNTER"},
    "tenant_id": {"S": "acme"},
    "resource_type": {"S": "executions"},
    "plan_id": {"S": "pro"},
    "policy": {"S": "hard"},
    "limit": {"N": "10"},
    "used": {"N": "1"},
    "remaining": {"N": "9"},
    "period_start": {"N": str(int((NOW - timedelta(days=1)).timestamp()))},
    "period_end": {"N": str(int((NOW + timedelta(days=29)).timestamp()))},
    "state": {"S": "active"},
}


def repository() -> tuple[EntitlementRepository, Stubber]:
    client = boto3.client("dynamodb", region_name="us-east-1")
    return EntitlementRepository(Settings(billing_table_name="billing"), client), Stubber(client)


def test_consume_resends_after_a_transaction_conflict() -> None:
    repo, stub = repository()
    expected = {"TableName": "billing", "Key": counter_key("acme", "executions")} | dict.fromkeys(
        (
            "ReturnValues",
            "ReturnValuesOnConditionCheckFailure",
            "UpdateExpression",
            "ConditionExpression",
            "ExpressionAttributeNames",
            "ExpressionAttributeValues",
        ),
        ANY,
    )
    stub.add_client_error("update_item", "TransactionConflictException", http_status_code=400, expected_params=expected)
    stub.add_response("update_item", {"Attributes": ITEM}, expected)
    with stub:
        counter, old = repo.consume(counter_key("acme", "executions"), Decimal(1), NOW, enforce=True)
    stub.assert_no_pending_responses()
    assert old is None
    assert counter is not None
    assert (counter.used, counter.remaining) == (1, 9)


def test_consume_gives_up_on_a_lasting_conflict_and_reports_a_failed_condition_as_refusal() -> None:
    repo, stub = repository()
    for _ in range(5):
        stub.add_client_error("update_item", "TransactionConflictException", http_status_code=400)
    with stub, pytest.raises(Exception, match="TransactionConflict"):
        repo.consume(counter_key("acme", "executions"), Decimal(1), NOW, enforce=True)
    repo, stub = repository()
    stub.add_client_error(
        "update_item",
        "ConditionalCheckFailedException",
        http_status_code=400,
        response_meta={},
        modeled_fields={"Item": ITEM},
    )
    with stub:
        counter, old = repo.consume(counter_key("acme", "executions"), Decimal(20), NOW, enforce=True)
    assert counter is None
    assert old == ITEM
