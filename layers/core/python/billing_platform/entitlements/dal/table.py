"""Plumbing every entitlement data-access piece shares: the table, the client, one retried write."""

from __future__ import annotations

import random
import time
from typing import Any

from botocore.exceptions import ClientError

from billing_platform.conditions import transaction_conflict
from billing_platform.dynamodb import BillingTable
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
            if not transaction_conflict(err) or attempt == TRANSACTION_CONFLICT_ATTEMPTS - 1:
                raise
            time.sleep(random.uniform(0.001, 0.005 * (attempt + 1)))
    raise AssertionError("unreachable")


class TableAccess(BillingTable):
    """The billing table and its client, plus the one read every entitlement item needs."""

    def __init__(self, settings: Settings, client: Any = None) -> None:
        super().__init__(settings, client)
        self._table = self.table

    @property
    def injected_client(self) -> Any:
        """The client a caller injected, or None (the container's shared one, created on first use): lets
        a sibling repository share it without creating a client at import."""
        return self._client

    def get_item(self, key: Item) -> Item | None:
        """One item, strongly consistent."""
        item: Item | None = self.client.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
        return item
