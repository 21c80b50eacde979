"""The four usage handlers over moto with real event shapes: ingest (202 / per-record errors / tenant
isolation / no write on bad input), consumer (partial batch response, poison, TTL, idempotent rewrite),
aggregator (INSERT only, replay-safe, malformed records skipped), queries (scoping and validation)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import ModuleType
from typing import Any

import boto3
import pytest

from billing_platform import resources
from billing_platform.usage.models import Granularity, floor_to
from billing_platform.usage.repository import raw_key
from tests.factories.apigw import api_event, json_body
from tests.factories.handlers import load_handler
from tests.factories.lambda_context import LambdaContext
from tests.factories.sqs import failed_ids, sqs_event, sqs_record
from tests.factories.streams import failed_sequence_numbers, insert, modify, remove, stream_event

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def aws(moto_aws: dict[str, str]) -> dict[str, Any]:
    return {
        "names": moto_aws,
        "ddb": boto3.client("dynamodb", region_name="us-east-1"),
        "sqs": boto3.client("sqs", region_name="us-east-1"),
    }


def queued_records(aws: dict[str, Any]) -> list[dict[str, Any]]:
    url = aws["names"][resources.USAGE_QUEUE.env_var]
    out: list[dict[str, Any]] = []
    while got := aws["sqs"].receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for m in got:
            out.extend(json.loads(m["Body"])["records"])
            aws["sqs"].delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return out


def items(aws: dict[str, Any], env_var: str) -> list[dict[str, Any]]:
    return aws["ddb"].scan(TableName=aws["names"][env_var])["Items"]


def rec(**overrides: Any) -> dict[str, Any]:
    base = {"resource_type": "tokens", "quantity": 10, "timestamp": NOW.isoformat()}
    return {**base, **overrides}


# ---------------------------------------------------------------------------------------------- ingest


def ingest(handler: ModuleType, body: Any, **kwargs: Any) -> dict[str, Any]:
    return handler.handler(api_event("POST", "/v1/usage", body, **kwargs), LambdaContext())


def test_ingest_accepts_valid_records_and_reports_each_invalid_one(aws: dict[str, Any]) -> None:
    handler = load_handler(resources.USAGE_INGEST.name)
    body = {
        "records": [
            rec(quantity=5),
            rec(quantity=-1),
            rec(resource_type="gold_bars"),
            rec(tenant_id="t_other"),
            rec(record_id="client-1", quantity="2.5"),
            rec(timestamp="2026-01-01T00:00:00"),
        ]
    }
    response = ingest(handler, body, tenant_id="t_a")
    assert response["statusCode"] == 202
    payload = json_body(response)
    assert payload["accepted"] == 2
    assert [(e["index"], e["status"]) for e in payload["errors"]] == [(1, 422), (2, 422), (3, 403), (5, 422)]
    queued = queued_records(aws)
    assert sorted(r["quantity"] for r in queued) == ["2.5", "5"]
    assert {r["tenant_id"] for r in queued} == {"t_a"}
    assert "client-1" in payload["record_ids"]


def test_ingest_of_only_foreign_records_is_forbidden_and_sends_nothing(aws: dict[str, Any]) -> None:
    handler = load_handler(resources.USAGE_INGEST.name)
    response = ingest(handler, {"records": [rec(tenant_id="t_b"), rec(tenant_id="t_c")]}, tenant_id="t_a")
    assert response["statusCode"] == 403
    assert queued_records(aws) == []


@pytest.mark.parametrize(
    "body",
    [
        {"records": [rec(quantity="NaN")]},
        {"records": []},
        {"records": [rec()] * 1001},
        {"items": [rec()]},
        "not json",
    ],
    ids=["nan-only", "empty", "too-many", "wrong-shape", "not-json"],
)
def test_ingest_rejects_bad_bodies_with_4xx_and_sends_nothing(aws: dict[str, Any], body: Any) -> None:
    handler = load_handler(resources.USAGE_INGEST.name)
    response = ingest(handler, body, tenant_id="t_a")
    assert 400 <= response["statusCode"] < 500
    assert queued_records(aws) == []


def test_ingest_needs_a_credential(aws: dict[str, Any]) -> None:
    handler = load_handler(resources.USAGE_INGEST.name)
    assert ingest(handler, {"records": [rec(tenant_id="t_a")]})["statusCode"] == 401
    assert queued_records(aws) == []


def test_ingest_retried_with_the_same_idempotency_key_reuses_record_ids(aws: dict[str, Any]) -> None:
    handler = load_handler(resources.USAGE_INGEST.name)
    body = {"records": [rec(), rec(quantity=3)]}
    first = json_body(ingest(handler, body, tenant_id="t_a", headers={"Idempotency-Key": "req-77"}))
    second = json_body(ingest(handler, body, tenant_id="t_a", headers={"Idempotency-Key": "req-77"}))
    assert first["record_ids"] == second["record_ids"]
    assert len(set(first["record_ids"])) == 2


def test_an_operator_may_ingest_for_any_tenant(aws: dict[str, Any]) -> None:
    handler = load_handler(resources.USAGE_INGEST.name)
    response = ingest(handler, {"records": [rec(tenant_id="t_x"), rec()]}, operator=True)
    assert response["statusCode"] == 202
    assert json_body(response)["accepted"] == 1  # the second names no tenant
    assert [r["tenant_id"] for r in queued_records(aws)] == ["t_x"]


# ---------------------------------------------------------------------------------------------- consumer


def message(*records: dict[str, Any]) -> dict[str, Any]:
    return {"v": 1, "records": list(records)}


def wire(record_id: str, tenant: str = "t_a", quantity: str = "1.5", ts: datetime = NOW) -> dict[str, Any]:
    return {
        "record_id": record_id,
        "tenant_id": tenant,
        "resource_type": "tokens",
        "quantity": quantity,
        "timestamp": ts.isoformat(),
    }


def test_consumer_writes_records_with_ttl_and_reports_only_poison_messages(aws: dict[str, Any]) -> None:
    handler = load_handler(resources.USAGE_CONSUMER.name)
    good = sqs_record(message(wire("use_a1"), wire("use_a2", quantity="7")))
    poison = sqs_record("{broken", receive_count=4)
    unknown = sqs_record(message({**wire("use_a3"), "resource_type": "gold"}))
    response = handler.handler({"Records": [good, poison, unknown]}, LambdaContext())
    assert sorted(failed_ids(response)) == sorted([poison["messageId"], unknown["messageId"]])
    stored = {i["record_id"]["S"]: i for i in items(aws, resources.USAGE_TABLE.env_var)}
    assert sorted(stored) == ["use_a1", "use_a2"]  # nothing of the failed message was written
    ttl_days = 35
    assert int(stored["use_a1"]["expires_at"]["N"]) == int((NOW + timedelta(days=ttl_days)).timestamp())
    assert stored["use_a2"]["quantity"]["N"] == "7"
    assert stored["use_a1"]["pk"]["S"] == raw_key("t_a", "tokens", "use_a1")["pk"]


def test_consumer_redelivery_rewrites_the_same_items(aws: dict[str, Any]) -> None:
    handler = load_handler(resources.USAGE_CONSUMER.name)
    body = message(*(wire(f"use_r{i}") for i in range(60)))
    for _ in range(3):
        assert failed_ids(handler.handler(sqs_event(body), LambdaContext())) == []
    assert len(items(aws, resources.USAGE_TABLE.env_var)) == 60


def test_consumer_ttl_follows_the_setting(aws: dict[str, Any], env: pytest.MonkeyPatch) -> None:
    env.setenv("USAGE_RECORD_TTL_DAYS", "10")
    from tests.conftest import reset_caches

    reset_caches()
    handler = load_handler(resources.USAGE_CONSUMER.name)
    handler.handler(sqs_event(message(wire("use_t1"))), LambdaContext())
    (item,) = items(aws, resources.USAGE_TABLE.env_var)
    assert int(item["expires_at"]["N"]) == int((NOW + timedelta(days=10)).timestamp())
    # A record older than the TTL window could be counted twice once its item expired: poison.
    old = sqs_record(message(wire("use_t2", ts=NOW - timedelta(days=12))))
    assert failed_ids(handler.handler({"Records": [old]}, LambdaContext())) == [old["messageId"]]


# ---------------------------------------------------------------------------------------------- aggregator


def usage_insert(record_id: str, tenant: str, quantity: str, ts: datetime, **kwargs: Any) -> dict[str, Any]:
    key = raw_key(tenant, "tokens", record_id)
    image = {
        "record_id": record_id,
        "tenant_id": tenant,
        "resource_type": "tokens",
        "quantity": Decimal(quantity),
        "ts": ts.isoformat(),
        "expires_at": 0,
    }
    return insert(key, image, **kwargs)


def answered(tenant: str, granularity: str, at: datetime) -> Decimal:
    """The tenant's tokens in the hour, day or month holding `at`, as the library answers it."""
    from billing_platform.usage.models import GRANULARITY_NAMES, floor_to, next_bucket
    from billing_platform.usage.queries import UsageAggregator

    unit = GRANULARITY_NAMES[granularity]
    start = floor_to(unit, at)
    series = UsageAggregator().sync.get_usage(tenant, "tokens", start, next_bucket(unit, start), granularity=unit)
    return series.total


def test_aggregator_counts_inserts_once_and_ignores_rewrites_expiry_and_replays(aws: dict[str, Any]) -> None:
    handler = load_handler(resources.USAGE_AGGREGATOR.name)
    late = NOW - timedelta(hours=5)
    records = [
        usage_insert("use_1", "t_a", "2", NOW),
        usage_insert("use_2", "t_a", "3.25", late),
        usage_insert("use_3", "t_b", "10", NOW),
    ]
    key = raw_key("t_a", "tokens", "use_1")
    image = {"tenant_id": "t_a", "resource_type": "tokens", "quantity": Decimal(2), "ts": NOW.isoformat()}
    noise = [modify(key, image, {**image, "quantity": Decimal(99)}), remove(key, image, ttl_expiry=True)]
    event = stream_event(*records, *noise)
    assert failed_sequence_numbers(handler.handler(event, LambdaContext())) == []
    # Lambda retries the same records, also inside a larger batch: nothing counts twice.
    assert failed_sequence_numbers(handler.handler(stream_event(*records[1:]), LambdaContext())) == []
    assert failed_sequence_numbers(handler.handler(event, LambdaContext())) == []
    assert answered("t_a", "hour", NOW) == Decimal(2)
    assert answered("t_a", "hour", late) == Decimal("3.25")
    assert answered("t_a", "month", NOW) == Decimal("5.25") or late.month != NOW.month
    assert answered("t_b", "day", NOW) == Decimal(10)


def test_aggregator_skips_a_malformed_insert_and_counts_the_rest(aws: dict[str, Any]) -> None:
    handler = load_handler(resources.USAGE_AGGREGATOR.name)
    bad = insert({"pk": "USAGE#01", "sk": "x"}, {"tenant_id": "t_a"})
    good = usage_insert("use_9", "t_a", "4", NOW)
    assert failed_sequence_numbers(handler.handler(stream_event(bad, good), LambdaContext())) == []
    assert answered("t_a", "hour", NOW) == Decimal(4)


# ---------------------------------------------------------------------------------------------- queries


def query(handler: ModuleType, path: str, params: dict[str, str], **kwargs: Any) -> dict[str, Any]:
    return handler.handler(api_event("GET", path, query=params, **kwargs), LambdaContext())


def test_trend_is_tenant_scoped_and_zero_filled(aws: dict[str, Any]) -> None:
    # The trend ends on the real clock's day: the record is stamped now, not at collection (a run can cross midnight).
    load_handler(resources.USAGE_AGGREGATOR.name).handler(
        stream_event(usage_insert("use_q1", "t_a", "6", datetime.now(UTC))), LambdaContext()
    )
    handler = load_handler(resources.USAGE_QUERY.name)
    own = query(handler, "/v1/tenants/t_a/usage", {"resource_type": "tokens", "days": "7"}, tenant_id="t_a")
    assert own["statusCode"] == 200
    points = json_body(own)["points"]
    assert [p["quantity"] for p in points] == ["0"] * 6 + ["6"]
    other = query(handler, "/v1/tenants/t_a/usage", {"resource_type": "tokens"}, tenant_id="t_b")
    assert other["statusCode"] == 403


def test_top_consumers_is_for_operators_only(aws: dict[str, Any]) -> None:
    handler = load_handler(resources.USAGE_QUERY.name)
    assert query(handler, "/v1/usage/top", {"resource_type": "tokens"}, tenant_id="t_a")["statusCode"] == 403
    response = query(handler, "/v1/usage/top", {"resource_type": "tokens"}, operator=True)
    assert response["statusCode"] == 200
    assert json_body(response)["items"] == []


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/v1/tenants/t_a/usage", {"resource_type": "gold"}, 422),
        ("/v1/tenants/t_a/usage", {"resource_type": "tokens", "days": "0"}, 422),
        ("/v1/tenants/t_a/usage", {"resource_type": "tokens", "days": "abc"}, 422),
        ("/v1/tenants/t_a/usage", {}, 422),
        ("/v1/usage/top", {"resource_type": "tokens", "start": "2026-11-01T00:30:00+00:00"}, 422),
        (
            "/v1/usage/top",
            {"resource_type": "tokens", "start": "2026-11-02T00:00:00+00:00", "end": "2026-11-01T00:00:00+00:00"},
            422,
        ),
        ("/v1/usage/top", {"resource_type": "tokens", "limit": "1000"}, 422),
        ("/v1/usage/top", {"resource_type": "tokens", "start": "yesterday"}, 422),
        ("/v1/usage/top", {"resource_type": "È", "start": "0204-03-13T07:56:03.406110Z"}, 422),
        (
            "/v1/usage/top",
            {"resource_type": "tokens", "start": "0204-03-13T07:00:00Z", "end": "0204-03-14T07:00:00Z"},
            422,
        ),
    ],
    ids=[
        "unknown-resource",
        "zero-days",
        "days-not-int",
        "no-resource",
        "start-off-hour",
        "start-after-end",
        "limit-too-big",
        "start-not-a-time",
        "year-204-off-hour",  # schemathesis found a 502 here
        "year-204-range",
    ],
)
def test_query_validation_is_a_clear_4xx(aws: dict[str, Any], path: str, params: dict[str, str], status: int) -> None:
    handler = load_handler(resources.USAGE_QUERY.name)
    response = query(handler, path, params, operator=True)
    assert response["statusCode"] == status, response
    body = json_body(response)
    assert {"code", "message"} <= set(body) <= {"code", "message", "details"}  # the one error body shape
    assert body["message"]


def test_top_consumers_over_hours_days_and_months(aws: dict[str, Any]) -> None:
    base = floor_to(Granularity.HOUR, NOW)
    events = [
        usage_insert("use_h1", "t_a", "5", base),
        usage_insert("use_h2", "t_b", "7", base - timedelta(hours=1)),
        usage_insert("use_h3", "t_a", "4", base - timedelta(days=3)),
        usage_insert("use_h4", "t_c", "1", base - timedelta(days=3)),
    ]
    load_handler(resources.USAGE_AGGREGATOR.name).handler(stream_event(*events), LambdaContext())
    handler = load_handler(resources.USAGE_QUERY.name)
    end = base + timedelta(hours=1)

    def top(start: datetime, limit: int = 10) -> list[tuple[str, str]]:
        params = {"resource_type": "tokens", "start": start.isoformat(), "end": end.isoformat(), "limit": str(limit)}
        body = json_body(query(handler, "/v1/usage/top", params, operator=True))
        return [(i["tenant_id"], i["quantity"]) for i in body["items"]]

    assert top(base) == [("t_a", "5")]
    assert top(base - timedelta(hours=1)) == [("t_b", "7"), ("t_a", "5")]
    assert top(base - timedelta(days=4)) == [("t_a", "9"), ("t_b", "7"), ("t_c", "1")]
    assert top(base - timedelta(days=4), limit=1) == [("t_a", "9")]


@pytest.mark.parametrize(
    "bad",
    [{"tenant_id": ""}, {"tenant_id": 0}, {"record_id": ""}, {"record_id": False}, {"quantity": {}}],
    ids=["empty-tenant", "zero-tenant", "empty-record-id", "false-record-id", "object-quantity"],
)
def test_ingest_refuses_empty_or_wrong_typed_fields_instead_of_defaulting(
    aws: dict[str, Any], bad: dict[str, Any]
) -> None:
    handler = load_handler(resources.USAGE_INGEST.name)
    response = ingest(handler, {"records": [rec(**bad)]}, tenant_id="t_a")
    assert 400 <= response["statusCode"] < 500
    assert queued_records(aws) == []
