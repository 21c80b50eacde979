"""local_stack.lambda_events: what the SQS and DynamoDB Streams APIs return, reshaped as Lambda's event
source mappings deliver it (the local pollers and tests/factories both build events through it)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from local_stack.lambda_events import json_item, scheduled_event, sqs_record_from_message, stream_record_from_api

QUEUE_ARN = "arn:aws:sqs:us-east-1:000000000000:usage-records"
STREAM_ARN = "arn:aws:dynamodb:ddblocal:000000000000:table/usage/stream/2026-11-25T00:00:00.000"


def test_sqs_message_is_renamed_and_its_attributes_reencoded() -> None:
    message = {
        "MessageId": "m-1",
        "ReceiptHandle": "rh-1",
        "MD5OfBody": "md5",
        "Body": '{"quantity": "1"}',
        "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1795694400000"},
        "MD5OfMessageAttributes": "md5a",
        "MessageAttributes": {
            "tenant": {"StringValue": "t_a", "DataType": "String"},
            "blob": {"BinaryValue": b"\x00\x01", "DataType": "Binary"},
        },
    }
    record = sqs_record_from_message(message, queue_arn=QUEUE_ARN, region="us-east-1")
    assert record["messageId"] == "m-1"
    assert record["receiptHandle"] == "rh-1"
    assert record["body"] == '{"quantity": "1"}'
    assert record["attributes"]["ApproximateReceiveCount"] == "2"
    assert record["md5OfBody"] == "md5"
    assert record["md5OfMessageAttributes"] == "md5a"
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == QUEUE_ARN
    assert record["awsRegion"] == "us-east-1"
    assert record["messageAttributes"]["tenant"] == {
        "stringValue": "t_a",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert base64.b64decode(record["messageAttributes"]["blob"]["binaryValue"]) == b"\x00\x01"


def test_sqs_message_without_attributes_has_empty_maps_and_no_md5_of_attributes() -> None:
    record = sqs_record_from_message(
        {"MessageId": "m", "ReceiptHandle": "r", "Body": "x"}, queue_arn=QUEUE_ARN, region="us-east-1"
    )
    assert record["messageAttributes"] == {}
    assert record["attributes"] == {}
    assert "md5OfMessageAttributes" not in record


def test_stream_record_gets_the_stream_arn_epoch_seconds_and_base64_binaries() -> None:
    created = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    api_record = {
        "eventID": "e-1",
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "ddblocal",
        "dynamodb": {
            "ApproximateCreationDateTime": created,
            "Keys": {"pk": {"S": "USAGE#t_a"}, "sk": {"S": "r-1"}},
            "NewImage": {
                "pk": {"S": "USAGE#t_a"},
                "q": {"N": "1.5"},
                "raw": {"B": b"\xff"},
                "nested": {"M": {"list": {"L": [{"B": b"\x01"}, {"S": "s"}]}}},
                "set": {"BS": [b"\x02"]},
            },
            "SequenceNumber": "000001",
            "SizeBytes": 42,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }
    record = stream_record_from_api(api_record, stream_arn=STREAM_ARN)
    assert record["eventSourceARN"] == STREAM_ARN
    assert record["eventName"] == "INSERT"
    change = record["dynamodb"]
    assert change["ApproximateCreationDateTime"] == int(created.timestamp())
    assert change["SequenceNumber"] == "000001"
    assert change["Keys"] == {"pk": {"S": "USAGE#t_a"}, "sk": {"S": "r-1"}}
    assert "OldImage" not in change
    image = change["NewImage"]
    assert image["q"] == {"N": "1.5"}
    assert image["raw"] == {"B": base64.b64encode(b"\xff").decode()}
    assert image["nested"]["M"]["list"]["L"][0] == {"B": base64.b64encode(b"\x01").decode()}
    assert image["set"] == {"BS": [base64.b64encode(b"\x02").decode()]}


def test_ttl_deletions_keep_the_service_identity() -> None:
    api_record = {
        "eventID": "e-2",
        "eventName": "REMOVE",
        "dynamodb": {"Keys": {"pk": {"S": "a"}}, "OldImage": {"pk": {"S": "a"}}, "SequenceNumber": "2"},
        "userIdentity": {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"},
    }
    record = stream_record_from_api(api_record, stream_arn=STREAM_ARN)
    assert record["userIdentity"] == {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    assert record["dynamodb"]["OldImage"] == {"pk": {"S": "a"}}


def test_json_item_leaves_plain_values_alone() -> None:
    item = {"s": {"S": "x"}, "n": {"N": "1"}, "b": {"BOOL": True}, "null": {"NULL": True}, "ss": {"SS": ["a"]}}
    assert json_item(item) == item


def test_scheduled_event_has_eventbridge_shape() -> None:
    at = datetime(2026, 11, 25, 12, 15, tzinfo=UTC)
    event = scheduled_event(rule_arn="arn:rule", region="us-east-1", account="000000000000", event_id="id", time=at)
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["resources"] == ["arn:rule"]
    assert event["time"] == "2026-11-25T12:15:00Z"
    assert event["detail"] == {}
