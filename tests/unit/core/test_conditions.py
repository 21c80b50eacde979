"""The one judge of refused DynamoDB writes (billing_platform.conditions): a lost race, a transient
refusal (throttling, a conflicting transaction) or a real failure, and the transaction retry built on it."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from billing_platform import conditions
from billing_platform.conditions import lost_race, throttled, transact_write_items, transient
from tests.factories.faults import ThrottledTransactions


def refused(code: str, reasons: list[str] | None = None, message: str = "") -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": message}}
    if reasons is not None:
        response["CancellationReasons"] = [{"Code": reason} for reason in reasons]
    return ClientError(response, "TransactWriteItems")  # type: ignore[arg-type]


CANCELLED = "TransactionCanceledException"


@pytest.mark.parametrize(
    ("exc", "race", "is_throttled", "is_transient"),
    [
        (refused("ConditionalCheckFailedException"), True, False, False),
        (refused(CANCELLED, ["ConditionalCheckFailed", "None"]), True, False, False),
        (refused(CANCELLED, ["None", "ConditionalCheckFailed"]), True, False, False),
        # Throttled: never someone else won, whatever the other items say.
        (refused(CANCELLED, ["ThrottlingError", "None"]), False, True, True),
        (refused(CANCELLED, ["ConditionalCheckFailed", "ThrottlingError"]), False, True, True),
        (refused(CANCELLED, ["ProvisionedThroughputExceeded"]), False, True, True),
        (refused("ProvisionedThroughputExceededException"), False, True, True),
        (refused("ThrottlingException"), False, True, True),
        # Another transaction held an item: send again; with a failed condition too, the condition decides.
        (refused(CANCELLED, ["TransactionConflict", "None"]), False, False, True),
        (refused(CANCELLED, ["TransactionConflict", "ConditionalCheckFailed"]), False, False, False),
        (refused("TransactionConflictException"), False, False, True),
        # Real failures.
        (refused(CANCELLED, ["ValidationError", "None"]), False, False, False),
        (refused("ValidationException"), False, False, False),
        (refused("ResourceNotFoundException"), False, False, False),
        # Emulators that send no reasons: the message lists them.
        (refused(CANCELLED, message="cancelled [ConditionalCheckFailed, None]"), True, False, False),
        (refused(CANCELLED, message="cancelled [ConditionalCheckFailed, ThrottlingError]"), False, True, True),
        (refused(CANCELLED, message="cancelled [TransactionConflict, None]"), False, False, True),
    ],
)
def test_each_refusal_is_judged_one_way(exc: ClientError, race: bool, is_throttled: bool, is_transient: bool) -> None:
    assert (lost_race(exc), throttled(exc), transient(exc)) == (race, is_throttled, is_transient)


def test_a_conflict_counts_as_a_race_only_where_the_caller_says_so() -> None:
    conflict = refused(CANCELLED, ["TransactionConflict", "None"])
    assert not lost_race(conflict)
    assert lost_race(conflict, frozenset({"ConditionalCheckFailed", "TransactionConflict"}))
    throttled_too = refused(CANCELLED, ["TransactionConflict", "ThrottlingError"])
    assert not lost_race(throttled_too, frozenset({"ConditionalCheckFailed", "TransactionConflict"}))


def put(key: str) -> list[dict[str, Any]]:
    item = {"pk": {"S": key}, "sk": {"S": "CONDITIONS"}}
    return [{"Put": {"TableName": TABLE, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}}]


TABLE = ""


@pytest.fixture
def client(moto_aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    global TABLE
    TABLE = moto_aws["BILLING_TABLE_NAME"]
    monkeypatch.setattr(conditions.time, "sleep", lambda _s: None)
    real = boto3.client("dynamodb", region_name="us-east-1")
    sent: list[str] = []
    real.meta.events.register("before-call.dynamodb.TransactWriteItems", lambda **_: sent.append("sent"))
    real.sent = sent
    return real


def stored(client: Any, key: str) -> bool:
    return "Item" in client.get_item(TableName=TABLE, Key={"pk": {"S": key}, "sk": {"S": "CONDITIONS"}})


def test_a_throttled_transaction_is_sent_again_until_it_commits(client: Any) -> None:
    faults = ThrottledTransactions(client, conditions.TRANSACT_ATTEMPTS - 1)
    transact_write_items(client, put("k1"))
    assert faults.refused == conditions.TRANSACT_ATTEMPTS - 1
    assert stored(client, "k1")


def test_a_lost_race_is_not_sent_again(client: Any) -> None:
    transact_write_items(client, put("k2"))
    client.sent.clear()
    with pytest.raises(ClientError) as raised:
        transact_write_items(client, put("k2"))
    assert lost_race(raised.value)
    assert not transient(raised.value)
    assert client.sent == ["sent"]


def test_throttling_beyond_the_attempts_surfaces_as_throttled_and_writes_nothing(client: Any) -> None:
    faults = ThrottledTransactions(client, 100)
    with pytest.raises(ClientError) as raised:
        transact_write_items(client, put("k3"))
    assert faults.refused == conditions.TRANSACT_ATTEMPTS
    assert throttled(raised.value)
    assert not lost_race(raised.value)
    assert not stored(client, "k3")
