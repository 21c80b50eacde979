"""The DynamoDB toolkit every repository shares, one rule each: the billing table and its client
(`BillingTable`), attribute values in and out (numbers as exact decimal strings, None as NULL), the
clock, every item of a query page after page (`query_items`), and the opaque page cursor.

(Clients are built in `clients`; refused writes are judged in `conditions`.)
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billing_platform import clients
from billing_platform.errors import ValidationError
from billing_platform.quantities import ZERO
from billing_platform.settings import Settings, get_settings


class BillingTable:
    """Base of the repositories on the billing table: the table named by the settings, and the
    container's DynamoDB client unless one is injected (tests, the local stack)."""

    def __init__(self, settings: Settings | None = None, client: Any = None) -> None:
        self._settings = settings or get_settings()
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or clients.dynamodb()

    @property
    def table(self) -> str:
        return self._settings.billing_table_name

    def gsi1_page(self, gsi1pk: str, *, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a gsi1 listing, newest first, and the cursor of the next (None at the end); a cursor
        made for another listing is refused (`decode_cursor`)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :g",
            "ExpressionAttributeValues": {":g": {"S": gsi1pk}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        start = decode_cursor(cursor, expected={"gsi1pk": gsi1pk}, names={"pk", "sk", "gsi1pk", "gsi1sk"})
        if start:
            kwargs["ExclusiveStartKey"] = start
        response = self.client.query(**kwargs)
        return response.get("Items", []), encode_cursor(response.get("LastEvaluatedKey"))


def query_items(client: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item a Query answers (`kwargs` as for `client.query`), page after page: a caller that stops
    early reads no further page."""
    kwargs = dict(kwargs)
    while True:
        page = client.query(**kwargs)
        yield from page.get("Items", [])
        if not page.get("LastEvaluatedKey"):
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def query_sort_key_range(
    client: Any, table: str, pk: str, first: str, last: str, **kwargs: Any
) -> Iterator[dict[str, Any]]:
    """Every item of partition `pk` with `first <= sk <= last`, page after page (`kwargs`: the rest of the
    Query, such as ConsistentRead or a projection)."""
    return query_items(
        client,
        TableName=table,
        KeyConditionExpression="pk = :pk AND sk BETWEEN :a AND :b",
        ExpressionAttributeValues={":pk": {"S": pk}, ":a": {"S": first}, ":b": {"S": last}},
        **kwargs,
    )


def number_attr(value: Decimal | int) -> dict[str, str]:
    """A number attribute: the exact decimal string, never a float and never an exponent. ValueError
    for NaN and infinities, which DynamoDB cannot store."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("DynamoDB numbers must be finite")
        return {"N": format(value, "f")}
    return {"N": str(value)}


def string_attr(value: str | None) -> dict[str, Any]:
    """A string attribute; None is stored as NULL (an attribute known to be empty)."""
    return {"S": value} if value is not None else {"NULL": True}


def decimal_of(attr: dict[str, Any] | None) -> Decimal:
    """The Decimal of a number attribute; a missing (or NULL) attribute reads as zero."""
    return Decimal(attr["N"]) if attr and "N" in attr else ZERO


def utc_now() -> datetime:
    """The current time, timezone-aware UTC: the default clock of every service."""
    return datetime.now(UTC)


def encode_cursor(last_evaluated_key: dict[str, Any] | None) -> str | None:
    """An opaque page cursor from DynamoDB's LastEvaluatedKey (string attributes only)."""
    if not last_evaluated_key:
        return None
    plain = {name: value["S"] for name, value in sorted(last_evaluated_key.items())}
    return base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, *, expected: dict[str, str], names: set[str]) -> dict[str, Any] | None:
    """The ExclusiveStartKey a cursor stands for. A cursor that was not made for this query (tampered, for
    another tenant, or garbage) is a 400, never a DynamoDB error or a read of someone else's page."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        plain = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        plain = None
    if (
        not isinstance(plain, dict)
        or set(plain) != names
        or not all(isinstance(v, str) and v for v in plain.values())
        or any(plain.get(k) != v for k, v in expected.items())
    ):
        raise ValidationError("the page cursor is not valid for this query", code="invalid_cursor")
    return {name: {"S": value} for name, value in plain.items()}
