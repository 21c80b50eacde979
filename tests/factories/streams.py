"""DynamoDB stream events exactly as Lambda's stream event source delivers them, built through the
same converter the local stack's poller uses (`local_stack.lambda_events`).

Images and keys are given as plain Python values (str, int, Decimal, bool, bytes, lists, dicts) and
serialized to DynamoDB attribute values the way boto3 would store them. Sequence numbers increase
across calls, like one shard's.
"""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from boto3.dynamodb.types import TypeSerializer

from billing_platform import resources
from local_stack.lambda_events import stream_record_from_api

REGION = "us-east-1"
ACCOUNT = "123456789012"
STREAM_ARN = (
    f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{resources.USAGE_TABLE.local_name}/stream/2026-11-25T00:00:00.000"
)
EventName = Literal["INSERT", "MODIFY", "REMOVE"]

_serializer = TypeSerializer()
_sequence = itertools.count(4_421_584_500_000_000_017_450_439_091)


def _plain(value: Any) -> Any:
    # boto3 refuses floats (inexact); tests may pass them for convenience.
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def serialize(item: dict[str, Any]) -> dict[str, Any]:
    """Plain Python item -> DynamoDB attribute-value item."""
    return {name: _serializer.serialize(_plain(value)) for name, value in item.items()}


def next_sequence_number() -> str:
    return str(next(_sequence))


def stream_record(
    event_name: EventName,
    keys: dict[str, Any],
    *,
    new_image: dict[str, Any] | None = None,
    old_image: dict[str, Any] | None = None,
    sequence_number: str | None = None,
    created_at: datetime | None = None,
    stream_arn: str = STREAM_ARN,
    region: str = REGION,
    ttl_expiry: bool = False,
) -> dict[str, Any]:
    """One stream record with NEW_AND_OLD_IMAGES. For INSERT give `new_image`, for MODIFY both, for
    REMOVE `old_image`; the keys are also part of each image, as DynamoDB writes them. `ttl_expiry`
    marks a REMOVE done by the TTL service."""
    change: dict[str, Any] = {
        "ApproximateCreationDateTime": created_at or datetime.now(UTC),
        "Keys": serialize(keys),
        "SequenceNumber": sequence_number or next_sequence_number(),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new_image is not None:
        change["NewImage"] = serialize({**keys, **new_image})
    if old_image is not None:
        change["OldImage"] = serialize({**keys, **old_image})
    change["SizeBytes"] = len(
        json.dumps([change["Keys"], change.get("NewImage"), change.get("OldImage")], default=str).encode()
    )
    record: dict[str, Any] = {
        "eventID": uuid.uuid4().hex,
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": change,
    }
    if ttl_expiry:
        record["userIdentity"] = {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"}
    return stream_record_from_api(record, stream_arn=stream_arn)


def insert(keys: dict[str, Any], image: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return stream_record("INSERT", keys, new_image=image, **kwargs)


def modify(keys: dict[str, Any], old: dict[str, Any], new: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return stream_record("MODIFY", keys, old_image=old, new_image=new, **kwargs)


def remove(keys: dict[str, Any], old: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return stream_record("REMOVE", keys, old_image=old, **kwargs)


def stream_event(*records: dict[str, Any]) -> dict[str, Any]:
    """A stream event (`{"Records": [...]}`) of prepared records, in the order given."""
    return {"Records": list(records)}


def failed_sequence_numbers(response: dict[str, Any] | None) -> list[str]:
    """The sequence numbers a handler reported in `batchItemFailures`."""
    return [item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", [])]
