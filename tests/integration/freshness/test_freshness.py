"""Freshness figures against moto (SQS, CloudWatch, DynamoDB): each figure read from where the alarm reads
it and judged by the alarm's threshold; the CLI prints the service's report and exits 1 when a figure is
late; the tenant directory lists a tenant from its first API key with the plan its entitlements show."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from billing_platform import resources
from billing_platform.auth.caller import Actor
from billing_platform.auth.service import ApiKeyService
from billing_platform.cli.main import EXIT_OK, EXIT_PROBLEMS, Dependencies, main
from billing_platform.entitlements.service import EntitlementService
from billing_platform.freshness.models import (
    ITERATOR_AGE_THRESHOLD_SECONDS,
    METER_LAG_THRESHOLD_SECONDS,
    QUEUE_AGE_THRESHOLD_SECONDS,
)
from billing_platform.freshness.service import FreshnessService
from billing_platform.metering.repository import MeterWatermarkRepository, meter_key
from billing_platform.tenants.service import TenantDirectory
from local_stack.provision import create_queue

NOW = datetime.now(UTC).replace(microsecond=0)
REGION = "us-east-1"


@pytest.fixture
def queues(moto_aws: dict[str, str], env: pytest.MonkeyPatch) -> dict[str, str]:
    names = create_queue(boto3.client("sqs", region_name=REGION), resources.WEBHOOK_QUEUE)
    for key, value in names.items():
        env.setenv(key, value)
    from tests.conftest import reset_caches

    reset_caches()
    return {**moto_aws, **names}


def _metric(namespace: str, name: str, dimension: tuple[str, str], value: float, at: datetime) -> None:
    boto3.client("cloudwatch", region_name=REGION).put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": name,
                "Dimensions": [{"Name": dimension[0], "Value": dimension[1]}],
                "Timestamp": at,
                "Value": value,
            }
        ],
    )


def test_with_nothing_emitted_the_ages_are_unknown_and_the_empty_dlqs_ok(queues: dict[str, str]) -> None:
    report = FreshnessService().report(now=NOW)
    assert report.usage_queue_oldest_message_age.level == "unknown"
    assert report.aggregator_iterator_age.level == "unknown"
    assert report.meter_reporter_lag.level == "unknown"
    assert (report.usage_dlq_depth.value, report.usage_dlq_depth.level) == (0, "ok")
    assert (report.webhook_dlq_depth.value, report.webhook_dlq_depth.level) == (0, "ok")
    assert report.usage_queue_oldest_message_age.threshold == QUEUE_AGE_THRESHOLD_SECONDS
    assert report.tenant is None


def test_each_figure_is_read_where_its_alarm_reads_it_and_judged_by_its_threshold(queues: dict[str, str]) -> None:
    _metric(
        "AWS/SQS", "ApproximateAgeOfOldestMessage", ("QueueName", "usage-records"), 1000, NOW - timedelta(minutes=1)
    )
    _metric("AWS/Lambda", "IteratorAge", ("FunctionName", "usage_aggregator"), 12_500, NOW - timedelta(minutes=1))
    # Older than the alarms' 5-minute window: not the current figure.
    _metric("AWS/Lambda", "IteratorAge", ("FunctionName", "usage_aggregator"), 999_999, NOW - timedelta(minutes=9))
    sqs = boto3.client("sqs", region_name=REGION)
    sqs.send_message(QueueUrl=queues[resources.WEBHOOK_QUEUE.dlq_env_var], MessageBody="{}")
    sqs.send_message(QueueUrl=queues[resources.USAGE_QUEUE.env_var], MessageBody="{}")
    MeterWatermarkRepository().record_run(NOW - timedelta(minutes=5), 600, 3, 0)

    report = FreshnessService().report(now=NOW)
    assert (report.usage_queue_oldest_message_age.value, report.usage_queue_oldest_message_age.level) == (1000, "late")
    assert (report.aggregator_iterator_age.value, report.aggregator_iterator_age.level) == (12.5, "ok")
    assert report.aggregator_iterator_age.threshold == ITERATOR_AGE_THRESHOLD_SECONDS
    assert (report.webhook_dlq_depth.value, report.webhook_dlq_depth.level) == (1, "late")
    assert report.usage_queue_visible == 1
    assert (report.meter_reporter_lag.value, report.meter_reporter_lag.level) == (600, "ok")
    assert report.meter_reporter_last_run.events_sent == 3


def test_a_meter_reporter_that_stopped_running_is_late(queues: dict[str, str]) -> None:
    MeterWatermarkRepository().record_run(NOW - timedelta(hours=3), 0, 0, 0)
    lag = FreshnessService().report(now=NOW).meter_reporter_lag
    schedule = (resources.METER_REPORTER.schedule_minutes or 0) * 60
    assert lag.value == 3 * 3600 - schedule
    assert lag.level == "late"
    assert lag.threshold == METER_LAG_THRESHOLD_SECONDS


def test_a_tenants_figures_name_the_last_hour_reported_per_metered_resource(queues: dict[str, str]) -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    table = queues[resources.BILLING_TABLE.env_var]
    for hour, reported in (("2026-12-07T09", "40"), ("2026-12-07T10", "12")):
        client.put_item(
            TableName=table, Item={**meter_key("t_a", "api_calls", f"H#{hour}"), "reported": {"N": reported}}
        )
    tenant = FreshnessService().report("t_a", now=NOW).tenant
    assert tenant is not None
    marks = {m.resource_type: (m.last_reported_hour, m.reported) for m in tenant.meters}
    assert marks == {"api_calls": ("2026-12-07T10", "12"), "tokens": (None, None)}


def test_the_cli_prints_the_same_report_and_exits_1_when_a_figure_is_late(queues: dict[str, str]) -> None:
    def run() -> tuple[int, dict[str, Any]]:
        out = io.StringIO()
        code = main(
            ["--json", "freshness", "--tenant", "t_a"],
            Dependencies(stdout=out, stderr=io.StringIO(), clock=lambda: NOW),
        )
        return code, json.loads(out.getvalue())

    code, printed = run()
    assert code == EXIT_OK
    assert printed == FreshnessService().report("t_a", now=NOW).model_dump()
    boto3.client("sqs", region_name=REGION).send_message(
        QueueUrl=queues[resources.USAGE_QUEUE.dlq_env_var], MessageBody="{}"
    )
    code, printed = run()
    assert code == EXIT_PROBLEMS
    assert printed["usage_dlq_depth"]["level"] == "late"


def test_the_directory_lists_a_tenant_from_its_first_key_with_its_entitlements_plan(queues: dict[str, str]) -> None:
    directory = TenantDirectory(EntitlementService().plan_for)
    assert directory.page().items == []
    keys = ApiKeyService()
    keys.create("t_b", name="one", actor=Actor("operator:me"))
    keys.create("t_b", name="two", actor=Actor("operator:me"))
    keys.create("t_a", name="one", actor=Actor("operator:me"))
    page = directory.page(limit=10)
    assert [t.tenant_id for t in page.items] == ["t_a", "t_b"]
    for summary in page.items:
        view = EntitlementService().entitlements(summary.tenant_id).to_dict()
        assert (summary.plan_id, summary.status, summary.subscribed) == (
            view["plan_id"],
            view["status"],
            view["subscribed"],
        )
    first = directory.page(limit=1)
    assert [t.tenant_id for t in first.items] == ["t_a"]
    assert first.next_cursor is not None
    assert [t.tenant_id for t in directory.page(limit=1, cursor=first.next_cursor).items] == ["t_b"]
