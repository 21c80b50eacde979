"""Tenant webhook endpoints: the operator API (secret once, audited, bad input writes nothing, tenants
refused) and delivery of bus events through the real webhook_delivery handler to a local HTTP receiver,
signed in Stripe's scheme (checked with the stripe SDK), retried per endpoint with backoff."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from billing_platform import resources
from billing_platform.tenant_webhooks.delivery import FIRST_RETRY_SECONDS, MAX_RETRY_SECONDS, retry_delay
from local_stack.lambda_events import sqs_record_from_message
from local_stack.provision import create_event_bus, create_queue, create_tables
from tests.conftest import reset_caches
from tests.factories.apigw import api_event, json_body
from tests.factories.handlers import load_handler
from tests.factories.lambda_context import LambdaContext
from tests.factories.sqs import failed_ids
from tests.factories.webhook_receiver import webhook_receiver

PATH = "/v1/tenants/t_hook/webhook-endpoints"


@pytest.fixture
def aws(env: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    from moto import mock_aws

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        names = create_tables(boto3.client("dynamodb", region_name="us-east-1"))
        for queue in resources.QUEUES:
            names.update(create_queue(sqs, queue))
        events = boto3.client("events", region_name="us-east-1")
        names.update(create_event_bus(events, sqs, resources.EVENT_BUS, names))
        for key, value in names.items():
            env.setenv(key, value)
        reset_caches()
        yield {"names": names, "sqs": sqs, "events": events, "ddb": boto3.client("dynamodb", region_name="us-east-1")}
        reset_caches()


def table_items(aws: dict[str, Any]) -> list[dict[str, Any]]:
    return list(aws["ddb"].scan(TableName=aws["names"][resources.BILLING_TABLE.env_var])["Items"])


def call(handler: Any, method: str, path: str, body: Any = None, **kwargs: Any) -> dict[str, Any]:
    return dict(handler.handler(api_event(method, path, body, **kwargs), LambdaContext()))


def create(handler: Any, url: str, **extra: Any) -> dict[str, Any]:
    response = call(handler, "POST", PATH, {"url": url, **extra}, operator=True)
    assert response["statusCode"] == 201, response
    return dict(json_body(response))


# ------------------------------------------------------------------------------------------ API


def test_create_shows_the_secret_once_lists_without_it_and_audits_both_mutations(aws: dict[str, Any]) -> None:
    handler = load_handler("webhook_endpoints")
    response = call(handler, "POST", PATH, {"url": "https://hooks.example.com/b", "description": "ops"}, operator=True)
    assert response["statusCode"] == 201
    assert response["multiValueHeaders"]["Cache-Control"] == ["no-store"]
    created = json_body(response)
    assert created["secret"].startswith("whsec_")
    assert len(created["secret"]) > 40
    assert created["enabled_events"] == ["*"]
    listed = json_body(call(handler, "GET", PATH, operator=True))["items"]
    assert [e["id"] for e in listed] == [created["id"]]
    assert "secret" not in listed[0]
    deleted = call(handler, "DELETE", f"{PATH}/{created['id']}", operator=True)
    assert deleted["statusCode"] == 200
    assert call(handler, "DELETE", f"{PATH}/{created['id']}", operator=True)["statusCode"] == 404
    assert json_body(call(handler, "GET", PATH, operator=True))["items"] == []
    audit = json_body(call(load_handler("api_keys"), "GET", "/v1/tenants/t_hook/audit", operator=True))["items"]
    assert sorted(e["action"] for e in audit) == ["webhook_endpoint.created", "webhook_endpoint.deleted"]
    assert created["secret"] not in json.dumps(audit)
    assert created["secret"] not in json.dumps(table_items(aws))  # deleted with its endpoint, never audited


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"url": "http://hooks.example.com/b"}, 422, "invalid_webhook_url"),  # plain http off loopback
        ({"url": "https://user:pw@hooks.example.com/b"}, 422, "invalid_webhook_url"),
        ({"url": "ftp://hooks.example.com/b"}, 422, "invalid_webhook_url"),
        ({"url": "not a url"}, 422, "invalid_webhook_url"),
        ({"url": "https://hooks.example.com/b", "enabled_events": ["billing.nope"]}, 422, "unknown_event_type"),
        ({"url": "https://hooks.example.com/b", "secret": "whsec_mine"}, 422, "validation_error"),
        ({"url": "https://" + "a" * 2050 + ".com"}, 422, "validation_error"),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(
    aws: dict[str, Any], body: dict[str, Any], status: int, code: str
) -> None:
    handler = load_handler("webhook_endpoints")
    before = table_items(aws)
    response = call(handler, "POST", PATH, body, operator=True)
    assert (response["statusCode"], json_body(response)["code"]) == (status, code)
    assert table_items(aws) == before


def test_tenant_keys_cannot_manage_endpoints_not_even_their_own(aws: dict[str, Any]) -> None:
    handler = load_handler("webhook_endpoints")
    for method, path, body in [("POST", PATH, {"url": "https://h.example.com"}), ("GET", PATH, None)]:
        response = call(handler, method, path, body, tenant_id="t_hook")
        assert response["statusCode"] == 403
    assert table_items(aws) == []


def test_http_to_loopback_is_refused_in_production(aws: dict[str, Any], env: pytest.MonkeyPatch) -> None:
    env.setenv("ENVIRONMENT", "production")
    reset_caches()
    response = call(load_handler("webhook_endpoints"), "POST", PATH, {"url": "http://127.0.0.1:9/h"}, operator=True)
    assert json_body(response)["code"] == "invalid_webhook_url"


# ------------------------------------------------------------------------------------------ delivery


def put_event(
    aws: dict[str, Any], tenant_id: str, event_id: str, detail_type: str = resources.QUOTA_THRESHOLD_CROSSED
) -> None:
    detail = {
        "event_id": event_id,
        "tenant_id": tenant_id,
        "resource_type": "api_calls",
        "threshold_percent": "80",
        "used": "800",
        "limit": "1000",
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    aws["events"].put_events(
        Entries=[
            {
                "Source": resources.EVENT_BUS.source,
                "DetailType": detail_type,
                "Detail": json.dumps(detail),
                "EventBusName": resources.EVENT_BUS.local_name,
            }
        ]
    )


def delivery_round(aws: dict[str, Any]) -> tuple[list[str], int]:
    """Receive what the bus rule queued, invoke the real handler like Lambda's SQS source, delete the
    successes. Returns (failed message ids, messages seen)."""
    url = aws["names"][resources.WEBHOOK_QUEUE.env_var]
    messages = (
        aws["sqs"]
        .receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"]
        )
        .get("Messages", [])
    )
    arn = f"arn:aws:sqs:us-east-1:123456789012:{resources.WEBHOOK_QUEUE.local_name}"
    event = {"Records": [sqs_record_from_message(m, queue_arn=arn, region="us-east-1") for m in messages]}
    failed = failed_ids(load_handler("webhook_delivery").handler(event, LambdaContext())) if messages else []
    for m in messages:
        if m["MessageId"] not in failed:
            aws["sqs"].delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return failed, len(messages)


def make_visible(aws: dict[str, Any]) -> None:
    """Time travel for the backoff: what the handler postponed becomes visible now."""
    from moto.sqs.models import sqs_backends

    queue = sqs_backends["123456789012"]["us-east-1"].queues[resources.WEBHOOK_QUEUE.local_name]
    for message in queue._messages:
        message.change_visibility(0)


def postponed_seconds(aws: dict[str, Any]) -> list[float]:
    from moto.sqs.models import sqs_backends

    queue = sqs_backends["123456789012"]["us-east-1"].queues[resources.WEBHOOK_QUEUE.local_name]
    now_ms = datetime.now(UTC).timestamp() * 1000
    return [round((m.visible_at - now_ms) / 1000) for m in queue._messages]


def test_events_reach_every_endpoint_signed_and_a_failed_one_alone_is_retried(aws: dict[str, Any]) -> None:
    handler = load_handler("webhook_endpoints")
    with webhook_receiver("/a") as good, webhook_receiver("/b") as flaky:
        secret_a = create(handler, good.url)["secret"]
        secret_b = create(handler, flaky.url, enabled_events=[resources.QUOTA_THRESHOLD_CROSSED])["secret"]
        create(handler, good.url.replace("/a", "/grants-only"), enabled_events=[resources.GRANT_EXPIRED])
        flaky.statuses = [500]
        put_event(aws, "t_hook", "evt_00000000000000000000000000000001")
        failed, seen = delivery_round(aws)
        assert (len(failed), seen) == (1, 1)
        assert postponed_seconds(aws) == [FIRST_RETRY_SECONDS]  # backoff, not the queue's 180 s
        assert [r.path for r in good.received] == ["/a"]  # the grants-only endpoint does not want it
        make_visible(aws)
        assert delivery_round(aws) == ([], 1)
        assert [r.path for r in good.received] == ["/a"]  # not sent again to the endpoint that had it
        assert len(flaky.received) == 2
        for received, secret in [(good.received[0], secret_a), (flaky.received[1], secret_b)]:
            assert received.signature_valid(secret)
            assert not received.signature_valid(secret_a if secret is secret_b else secret_b)
            body = json.loads(received.body)
            assert (body["id"], body["type"]) == (
                "evt_00000000000000000000000000000001",
                resources.QUOTA_THRESHOLD_CROSSED,
            )
            assert body["data"]["used"] == "800"
            assert received.headers["Billing-Event-Id"] == body["id"]
        assert delivery_round(aws) == ([], 0)


def test_a_tampered_body_fails_verification(aws: dict[str, Any]) -> None:
    handler = load_handler("webhook_endpoints")
    with webhook_receiver() as receiver:
        secret = create(handler, receiver.url)["secret"]
        put_event(aws, "t_hook", "evt_00000000000000000000000000000002")
        assert delivery_round(aws) == ([], 1)
        received = receiver.received[0]
        received.body = received.body.replace(b'"800"', b'"1"')
        assert not received.signature_valid(secret)


def test_an_unreachable_endpoint_is_retried_with_growing_delays() -> None:
    delays = [retry_delay(n) for n in range(1, resources.WEBHOOK_QUEUE.max_receive_count + 1)]
    assert delays[:4] == [30, 60, 120, 240]
    assert delays == sorted(delays)
    assert max(delays) == MAX_RETRY_SECONDS
    # Everything fits in the queue's retention before the DLQ takes the message.
    assert sum(delays) < resources.WEBHOOK_QUEUE.retention_days * 86_400


def test_endpoints_past_the_time_budget_are_left_for_the_retry(aws: dict[str, Any]) -> None:
    from datetime import timedelta

    from billing_platform.settings import get_settings
    from billing_platform.tenant_webhooks.delivery import DELIVERY_BUDGET_SECONDS, WebhookDeliveryService

    handler = load_handler("webhook_endpoints")
    with webhook_receiver() as receiver:
        for n in range(4):
            create(handler, receiver.url + f"/{n}")
        # Each POST takes 6 s by this clock: only what starts within the budget minus one timeout is tried.
        moments = iter(datetime.now(UTC) + timedelta(seconds=6 * i) for i in range(100))
        service = WebhookDeliveryService(get_settings(), clock=lambda: next(moments))
        envelope = {
            "detail-type": resources.QUOTA_THRESHOLD_CROSSED,
            "detail": {"event_id": "evt_budget", "tenant_id": "t_hook", "occurred_at": datetime.now(UTC).isoformat()},
        }
        first = service.deliver(envelope)
        assert 0 < len(first.delivered) < 4
        assert all("budget" in why for why in first.failed.values())
        assert len(first.delivered) + len(first.failed) == 4
        assert resources.WEBHOOK_DELIVERY.timeout_seconds > DELIVERY_BUDGET_SECONDS
        second = WebhookDeliveryService(get_settings()).deliver(envelope)
        assert sorted(second.delivered) == sorted(first.failed)
        assert len(receiver.received) == 4
