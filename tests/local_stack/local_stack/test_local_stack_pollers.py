"""The local stack's stream poller on Amazon's DynamoDB Local: records written after it started reach the
function, whatever else the database was doing (a regression test for a DynamoDB Local quirk)."""

from __future__ import annotations

from typing import Any

import pytest

from billing_platform import resources
from local_stack.pollers import StreamPoller

pytestmark = pytest.mark.ddblocal


def _item(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": "1"}}


def test_stream_records_arrive_after_writes_to_other_tables_moved_the_sequence_counter(
    dynamodb_local: Any, ddb_local_tables: dict[str, str]
) -> None:
    # DynamoDB Local numbers stream records with one counter for the whole database: the iterator the
    # poller takes on the still-empty shard ends up below the shard's first record, and GetRecords then
    # raises TrimmedDataAccessException. Before the fix the poller retried that iterator forever.
    client = dynamodb_local.client("dynamodb")
    usage_table = ddb_local_tables[resources.USAGE_TABLE.env_var]
    delivered: list[dict[str, Any]] = []

    def invoke(name: str, event: dict[str, Any]) -> dict[str, Any]:
        delivered.extend(event["Records"])
        return {"batchItemFailures": []}

    source = resources.USAGE_AGGREGATOR.stream_source
    assert source is not None
    poller = StreamPoller(
        client,
        dynamodb_local.client("dynamodbstreams"),
        table_name=usage_table,
        function=resources.USAGE_AGGREGATOR.name,
        invoke=invoke,
        batch_size=source.batch_size,
        batching_window_seconds=0,
    )
    assert poller.poll_once() == 0  # iterators taken on the empty shard
    for n in range(3):
        client.put_item(TableName=ddb_local_tables[resources.BILLING_TABLE.env_var], Item=_item(f"other-{n}"))
    client.put_item(TableName=usage_table, Item=_item("usage-1"))

    for _ in range(5):
        poller.poll_once()
        if delivered:
            break
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in delivered] == ["usage-1"]
    assert delivered[0]["eventName"] == "INSERT"
