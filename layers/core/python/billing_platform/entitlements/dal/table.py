"""Plumbing every entitlement data-access piece shares: the table, the client, one retried write."""

from __future__ import annotations

import random
import time
from typing import Any

from botocore.exceptions import ClientError

from billing_platform import clients
from billing_platform.entitlements.dal.items import Item
from billing_platform.settings import Settings

# botocore's standard retry mode does not retry TransactionConflictException, which DynamoDB returns to
# a single-item write that collides with a running transaction (an idempotent consume, a release, a
# layout switch on the same counter). The collision is momentary, so the write is simply sent again.
TRANSACTION_CONFLICT_ATTEMPTS = 5


def update_item(client: Any, **kwargs: Any) -> Any:
    """`UpdateItem`, sent again when it collided with a running transaction."""
    for attempt in range(TRANSACTION_CONFLICT_ATTEMPTS):
        try:
            return client.update_item(**kwargs)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code")
            if code != "TransactionConflictException" or attempt == TRANSACTION_CONFLICT_ATTEMPTS - 1:
                raise
            time.sleep(random.uniform(0.001, 0.005 * (attempt + 1)))
    raise AssertionError("unreachable")


def cancel_reasons(err: ClientError) -> list[dict[str, Any]] | None:
    """The cancellation reasons of a cancelled transaction (in item order); None for any other error."""
    if err.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return None
    reasons: Any = err.response.get("CancellationReasons") or []
    return list(reasons)


class TableAccess:
    """The billing table and its client (the container's shared one unless a test injects its own)."""

    def __init__(self, settings: Settings, client: Any = None) -> None:
        self._table = settings.billing_table_name
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or clients.dynamodb()

    def get_item(self, key: Item) -> Item | None:
        """One item, strongly consistent."""
        item: Item | None = self.client.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
        return item
