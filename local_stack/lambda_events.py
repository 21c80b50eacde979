"""The event shapes Lambda's event-source mappings deliver, built from what the SQS and DynamoDB Streams
APIs return. The local pollers and the test factories (tests/factories/sqs.py, streams.py) both use these,
so a test event and a local-stack event cannot differ in shape.

Lambda renames and re-encodes on the way: SQS `MessageId` becomes `messageId`, message attributes become
`{stringValue, stringListValues, binaryListValues, dataType}`, binary values are base64 strings; a stream
record gains `eventSourceARN` and its `ApproximateCreationDateTime` becomes epoch seconds.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any


def _b64(value: bytes | str) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).decode()


def _lambda_message_attribute(attr: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "stringListValues": list(attr.get("StringListValues") or []),
        "binaryListValues": [_b64(v) for v in attr.get("BinaryListValues") or []],
        "dataType": attr["DataType"],
    }
    if "StringValue" in attr:
        out["stringValue"] = attr["StringValue"]
    if "BinaryValue" in attr:
        out["binaryValue"] = _b64(attr["BinaryValue"])
    return out


def sqs_record_from_message(message: dict[str, Any], *, queue_arn: str, region: str) -> dict[str, Any]:
    """One `Records[]` entry of an SQS event, from a `ReceiveMessage` message (requested with
    `MessageSystemAttributeNames=["All"]` and `MessageAttributeNames=["All"]`)."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": {
            name: _lambda_message_attribute(attr) for name, attr in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        **(
            {"md5OfMessageAttributes": message["MD5OfMessageAttributes"]} if "MD5OfMessageAttributes" in message else {}
        ),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def _json_attribute_value(value: dict[str, Any]) -> dict[str, Any]:
    """botocore decodes `B`/`BS` into bytes; the Lambda event carries them base64-encoded as on the wire."""
    (kind, inner), *_ = value.items()
    if kind == "B":
        return {"B": _b64(inner)}
    if kind == "BS":
        return {"BS": [_b64(v) for v in inner]}
    if kind == "M":
        return {"M": {k: _json_attribute_value(v) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [_json_attribute_value(v) for v in inner]}
    return {kind: inner}


def json_item(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item (attribute-value form) as it appears in Lambda's JSON event."""
    return {name: _json_attribute_value(value) for name, value in item.items()}


def stream_record_from_api(record: dict[str, Any], *, stream_arn: str) -> dict[str, Any]:
    """One `Records[]` entry of a DynamoDB stream event, from a `GetRecords` record."""
    change = record["dynamodb"]
    created = change.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        created = int(created.timestamp())
    dynamodb: dict[str, Any] = {}
    if created is not None:
        dynamodb["ApproximateCreationDateTime"] = created
    dynamodb["Keys"] = json_item(change.get("Keys") or {})
    for image in ("NewImage", "OldImage"):
        if image in change:
            dynamodb[image] = json_item(change[image])
    dynamodb["SequenceNumber"] = change["SequenceNumber"]
    dynamodb["SizeBytes"] = change.get("SizeBytes", 0)
    dynamodb["StreamViewType"] = change.get("StreamViewType", "NEW_AND_OLD_IMAGES")
    out: dict[str, Any] = {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": record.get("eventSource", "aws:dynamodb"),
        "awsRegion": record.get("awsRegion", "us-east-1"),
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }
    if record.get("userIdentity"):
        # TTL deletions: {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
        out["userIdentity"] = {
            "type": record["userIdentity"]["Type"],
            "principalId": record["userIdentity"]["PrincipalId"],
        }
    return out


def scheduled_event(*, rule_arn: str, region: str, account: str, event_id: str, time: datetime) -> dict[str, Any]:
    """An EventBridge scheduled-rule event, as a schedule delivers it to Lambda."""
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }
