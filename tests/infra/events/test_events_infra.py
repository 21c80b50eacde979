"""The event bus, its webhook rule and the events functions' grants: exactly what their code calls. The
item-scoped grants are checked against every DynamoDB request the real code makes on moto."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from billing_platform import resources
from billing_platform.auth.caller import Actor
from billing_platform.events.publisher import EventPublisher
from billing_platform.events.repository import EventLedger
from billing_platform.events.stream import QuotaEventProcessor
from billing_platform.resources import FunctionSpec
from billing_platform.settings import get_settings
from billing_platform.tenant_webhooks.delivery import WebhookDeliveryService
from billing_platform.tenant_webhooks.repository import WebhookEndpointRepository
from billing_platform.tenant_webhooks.service import WebhookEndpointService
from local_stack.provision import create_event_bus, create_queue, create_tables
from tests.conftest import reset_caches
from tests.factories.billing_events import counter_image, counter_write, grant_draw
from tests.factories.streams import serialize
from tests.infra.cfn import Synthesized, as_list, function_specs, references, statements_of_role

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]
REGION = "us-east-1"


def _string_like(pattern: str, value: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value) is not None


def _dynamodb_statements(synthesized: Synthesized, spec: FunctionSpec) -> list[dict[str, Any]]:
    """Table statements (not ListStreams on '*', not the stream's own read actions)."""
    stream_actions = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"}
    return [
        s
        for s in statements_of_role(synthesized, synthesized.role_id(spec))
        if s["Resource"] != "*"
        and any(a.startswith("dynamodb:") for a in as_list(s["Action"]))
        and not set(as_list(s["Action"])) <= stream_actions
    ]


def test_the_rule_sends_exactly_the_tenant_event_types_from_the_bus_to_the_webhook_queue(
    synthesized: Synthesized,
) -> None:
    bus_id = synthesized.logical_id(synthesized.stack.events.bus)
    (rule,) = (
        synthesized.of_type("AWS::Events::Rule").values()
        if False
        else [r for r in synthesized.of_type("AWS::Events::Rule").values() if "EventBusName" in r["Properties"]]
    )
    props = rule["Properties"]
    assert references(props["EventBusName"]) == {(bus_id, "Ref")}
    assert props["EventPattern"] == {"source": [resources.EVENT_BUS.source], "detail-type": list(resources.EVENT_TYPES)}
    (target,) = props["Targets"]
    assert references(target["Arn"]) == {(synthesized.queue_id(resources.WEBHOOK_QUEUE), "Arn")}
    assert references(target["DeadLetterConfig"]["Arn"]) == {(synthesized.dlq_id(resources.WEBHOOK_QUEUE), "Arn")}
    (archive,) = synthesized.of_type("AWS::Events::Archive").values()
    assert archive["Properties"]["RetentionDays"] == resources.EVENT_BUS.archive_retention_days


@pytest.mark.parametrize("spec", function_specs())
def test_only_event_publishers_may_put_events_and_only_on_the_bus(synthesized: Synthesized, spec: FunctionSpec) -> None:
    bus_id = synthesized.logical_id(synthesized.stack.events.bus)
    targets: set[tuple[str, str]] = set()
    for statement in statements_of_role(synthesized, synthesized.role_id(spec)):
        actions = set(as_list(statement["Action"]))
        assert not any(a.startswith("events:") for a in actions - {"events:PutEvents"}), actions
        if "events:PutEvents" in actions:
            targets |= references(statement["Resource"])
    assert targets == ({(bus_id, "Arn")} if spec.publishes_to else set())
    env = synthesized.resources[synthesized.function_id(spec)]["Properties"]["Environment"]["Variables"]
    assert (resources.EVENT_BUS.env_var in env) is bool(spec.publishes_to)


def test_the_events_stream_mapping_filters_to_counter_and_grant_items(synthesized: Synthesized) -> None:
    function_id = synthesized.function_id(resources.QUOTA_EVENTS)
    (mapping,) = [
        m["Properties"]
        for m in synthesized.of_type("AWS::Lambda::EventSourceMapping").values()
        if references(m["Properties"]["FunctionName"]) == {(function_id, "Ref")}
    ]
    patterns = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]
    assert patterns == [
        {"dynamodb": {"Keys": {"pk": {"S": [{"prefix": prefix}]}}}}
        for prefix in resources.QUOTA_EVENTS.stream_source.key_prefixes  # type: ignore[union-attr]
    ]


@pytest.fixture
def aws(env: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    from moto import mock_aws

    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        names = create_tables(boto3.client("dynamodb", region_name=REGION))
        for queue in resources.QUEUES:
            names.update(create_queue(sqs, queue))
        names.update(create_event_bus(boto3.client("events", region_name=REGION), sqs, resources.EVENT_BUS, names))
        for key, value in names.items():
            env.setenv(key, value)
        reset_caches()
        yield names
        reset_caches()


def _recording_client(calls: list[tuple[str, list[str]]]) -> Any:
    """A DynamoDB client noting each request's operation and the partition keys it touches."""
    client = boto3.client("dynamodb", region_name=REGION)

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        keys: list[str] = []
        if "Key" in params:
            keys.append(params["Key"]["pk"]["S"])
        if "Item" in params:
            keys.append(params["Item"]["pk"]["S"])
        for request in params.get("RequestItems", {}).values():
            keys += [k["pk"]["S"] for k in request.get("Keys", [])]
        if "KeyConditionExpression" in params:
            keys.append(params["ExpressionAttributeValues"][":pk"]["S"])
        calls.append((model.name, keys))

    client.meta.events.register("before-parameter-build.dynamodb.*", record)
    return client


def _check_scoped(synthesized: Synthesized, spec: FunctionSpec, calls: list[tuple[str, list[str]]]) -> list[str]:
    (statement,) = _dynamodb_statements(synthesized, spec)
    assert statement["Resource"] == {"Fn::GetAtt": [synthesized.table_id(resources.BILLING_TABLE), "Arn"]}
    patterns = statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    assert {f"dynamodb:{name}" for name, _ in calls} == set(as_list(statement["Action"]))
    for name, keys in calls:
        assert keys, name
        for pk in keys:
            assert any(_string_like(p, pk) for p in patterns), (name, pk)
    return list(patterns)


def test_quota_events_may_touch_counters_and_event_markers_only(synthesized: Synthesized, aws: dict[str, str]) -> None:
    calls: list[tuple[str, list[str]]] = []
    client = _recording_client(calls)
    settings = get_settings()
    table = aws[resources.BILLING_TABLE.env_var]
    for shard in range(2):
        keys, image = counter_image("t_i", "tokens", 300, limit=500, shard=shard, shards=2, total_limit=1000)
        client.put_item(TableName=table, Item=serialize({**keys, **image}))
    calls.clear()
    processor = QuotaEventProcessor(
        settings, ledger=EventLedger(settings, client=client), publisher=EventPublisher(settings)
    )
    records = [
        counter_write("t_i", "api_calls", 0, 900),
        counter_write("t_i", "tokens", 250, 300, limit=500, shard=1, shards=2, total_limit=1000),
        grant_draw("t_i", "grt_00000000000000f1", 10, 0),
    ]
    assert processor.process(records).failed_from is None
    processor2 = QuotaEventProcessor(
        settings, ledger=EventLedger(settings, client=client), publisher=EventPublisher(settings)
    )
    assert processor2.process(records).published == []  # the refused claims are in the record too
    patterns = _check_scoped(synthesized, resources.QUOTA_EVENTS, calls)
    for other in ("TENANT#t_i", "APIKEY#abc", "GRANTS#t_i", "AUDIT#t_i", "WEBHOOKS#t_i"):
        assert not any(_string_like(p, other) for p in patterns), other


def test_webhook_delivery_may_touch_the_tenants_webhook_items_only(
    synthesized: Synthesized, aws: dict[str, str]
) -> None:
    settings = get_settings()
    WebhookEndpointService(settings).create(
        "t_w",
        url="https://hooks.example.com/billing",
        enabled_events=["*"],
        description=None,
        actor=Actor("operator:t"),
    )
    calls: list[tuple[str, list[str]]] = []

    class Answering:
        def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
            return 204

    service = WebhookDeliveryService(
        settings, WebhookEndpointRepository(settings, client=_recording_client(calls)), Answering()
    )
    envelope = {
        "detail-type": resources.QUOTA_THRESHOLD_CROSSED,
        "detail": {"event_id": "evt_1", "tenant_id": "t_w", "occurred_at": datetime.now(UTC).isoformat()},
    }
    assert service.deliver(envelope).delivered
    assert service.deliver(envelope).already
    patterns = _check_scoped(synthesized, resources.WEBHOOK_DELIVERY, calls)
    for other in ("TENANT#t_w", "QUOTA#t_w#tokens", "EVENTS#t_w", "APIKEY#x"):
        assert not any(_string_like(p, other) for p in patterns), other
