"""Faults DynamoDB really answers with, injected at the botocore layer of a real client (every other
request still reaches moto or DynamoDB Local unchanged)."""

from __future__ import annotations

import json
from typing import Any

THROTTLED_ITEM = {
    "Code": "ThrottlingError",
    "Message": "Throughput exceeds the current capacity of your table or index.",
}


class _ErrorHttp:
    status_code = 400
    headers: dict[str, str] = {}
    content = b"{}"


class ThrottledTransactions:
    """Answers the next `count` TransactWriteItems of `client` the way DynamoDB cancels a transaction
    whose first item was throttled: TransactionCanceledException, reasons [ThrottlingError, None, ...].
    The transaction writes nothing, as in DynamoDB. `refused` counts the cancellations sent."""

    def __init__(self, client: Any, count: int) -> None:
        self.left = count
        self.refused = 0
        client.meta.events.register("before-call.dynamodb.TransactWriteItems", self)

    def __call__(self, params: dict[str, Any], **_: Any) -> tuple[_ErrorHttp, dict[str, Any]] | None:
        if self.left <= 0:
            return None
        self.left -= 1
        self.refused += 1
        items = json.loads(params["body"])["TransactItems"]  # the serialized request
        reasons = [THROTTLED_ITEM] + [{"Code": "None"}] * (len(items) - 1)
        codes = ", ".join(reason["Code"] for reason in reasons)
        return _ErrorHttp(), {
            "Error": {
                "Code": "TransactionCanceledException",
                "Message": f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]",
            },
            "CancellationReasons": reasons,
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }
