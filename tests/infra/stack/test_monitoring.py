"""Alarms on dead-letter depth, function errors and throttles, all routed to the alarm topic."""

from __future__ import annotations

from typing import Any

import pytest

from billing_platform import resources
from billing_platform.resources import FunctionSpec
from tests.infra.cfn import Synthesized, function_specs, references

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]


def _alarms(synthesized: Synthesized) -> list[dict[str, Any]]:
    return [a["Properties"] for a in synthesized.of_type("AWS::CloudWatch::Alarm").values()]


def _alarms_on(synthesized: Synthesized, namespace: str, metric: str, dimension_target: str) -> list[dict[str, Any]]:
    return [
        alarm
        for alarm in _alarms(synthesized)
        if alarm.get("Namespace") == namespace
        and alarm.get("MetricName") == metric
        and any(target == dimension_target for target, _ in references(alarm.get("Dimensions", [])))
    ]


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
@pytest.mark.parametrize("spec", function_specs())
def test_every_function_alarms_on(synthesized: Synthesized, spec: FunctionSpec, metric: str) -> None:
    alarms = _alarms_on(synthesized, "AWS/Lambda", metric, synthesized.function_id(spec))
    assert len(alarms) == 1
    assert alarms[0]["Threshold"] >= 1
    assert alarms[0]["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_dead_letter_queues_alarm_on_their_first_message(synthesized: Synthesized) -> None:
    dead_letters = [synthesized.dlq_id(resources.USAGE_QUEUE)] + [
        synthesized.logical_id(q) for q in synthesized.stack.usage_pipeline.stream_failures.values()
    ]
    for queue_id in dead_letters:
        alarms = _alarms_on(synthesized, "AWS/SQS", "ApproximateNumberOfMessagesVisible", queue_id)
        assert len(alarms) == 1, queue_id
        assert alarms[0]["Threshold"] == 1


def test_every_alarm_notifies_the_alarm_topic(synthesized: Synthesized) -> None:
    (topic_id,) = synthesized.of_type("AWS::SNS::Topic")
    alarms = _alarms(synthesized)
    assert alarms
    for alarm in alarms:
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]


# --- dashboard, queue age and meter reporter alarms ---------------------------------------------


def _dashboard_body(synthesized: Synthesized) -> str:
    """The dashboard body with CloudFormation's Fn::Join flattened (tokens become `<ref:Id>`)."""
    (dashboard,) = synthesized.of_type("AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]
    if isinstance(body, str):
        return body
    parts = body["Fn::Join"][1]
    return "".join(p if isinstance(p, str) else f"<ref:{next(iter(p.values()))}>" for p in parts)


def _widgets(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    import json

    body = json.loads(_dashboard_body(synthesized).replace('"<ref:', '"ref:').replace('>"', '"'))
    return {w["properties"].get("title", w["type"]): w for w in body["widgets"]}


@pytest.mark.parametrize(
    ("title", "needles"),
    [
        ("Entitlement checks: allowed / denied", ["EntitlementGranted", "EntitlementDenied"]),
        ("Entitlement checks by resource", ["SEARCH(", "resource_type", "EntitlementDenied"]),
        ("Usage records", ["UsageRecordsWritten", "UsageRecordsAccepted"]),
        ("Stripe webhook events by type and outcome", ["StripeEventReceived", "event_type,outcome"]),
        ("Meter events", ["MeterEventsSent", "MeterEventsFailed", "MeterUnitsReported"]),
        ("Meter reporter lag (s)", ["MeterReporterLag"]),
        ("Queue depth", ["ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"]),
        ("Dead-letter depth", ["ApproximateNumberOfMessagesVisible"]),
        ("Stream iterator age (ms)", ["IteratorAge"]),
        ("Function errors and throttles", ["Errors", "Throttles"]),
        ("Function latency p99 (ms)", ["Duration", "p99"]),
        ("API latency p99 (ms) and 5xx", ["Latency", "5XXError"]),
    ],
)
def test_dashboard_graphs(synthesized: Synthesized, title: str, needles: list[str]) -> None:
    widgets = _widgets(synthesized)
    assert title in widgets
    metrics = str(widgets[title]["properties"]["metrics"])
    for needle in needles:
        assert needle in metrics, (title, needle)


def test_dashboard_covers_every_function_and_dead_letter_queue(synthesized: Synthesized) -> None:
    widgets = _widgets(synthesized)
    latency = str(widgets["Function latency p99 (ms)"]["properties"]["metrics"])
    for spec in resources.FUNCTIONS:
        assert synthesized.function_id(spec) in latency, spec.name
    dead_letters = str(widgets["Dead-letter depth"]["properties"]["metrics"])
    assert synthesized.dlq_id(resources.USAGE_QUEUE) in dead_letters
    iterator = str(widgets["Stream iterator age (ms)"]["properties"]["metrics"])
    assert synthesized.function_id(resources.USAGE_AGGREGATOR) in iterator


def test_meter_reporter_alarms_on_lag_and_refused_events(synthesized: Synthesized) -> None:
    by_metric = {a.get("MetricName"): a for a in _alarms(synthesized) if a.get("Namespace") == "Billing"}
    lag = by_metric["MeterReporterLag"]
    assert lag["Statistic"] == "Maximum"
    assert lag["TreatMissingData"] == "breaching"  # a reporter that stopped running must page too
    assert lag["Dimensions"] == [{"Name": "service", "Value": "billing"}]
    failed = by_metric["MeterEventsFailed"]
    assert failed["Threshold"] == 1
    assert failed["EvaluationPeriods"] == 2


def test_usage_queue_alarms_on_its_oldest_message(synthesized: Synthesized) -> None:
    alarms = _alarms_on(
        synthesized, "AWS/SQS", "ApproximateAgeOfOldestMessage", synthesized.queue_id(resources.USAGE_QUEUE)
    )
    assert len(alarms) == 1


def test_alarm_topic_is_encrypted_and_refuses_plain_http(synthesized: Synthesized) -> None:
    (topic,) = synthesized.of_type("AWS::SNS::Topic").values()
    assert "KmsMasterKeyId" in topic["Properties"]
    (policy,) = synthesized.of_type("AWS::SNS::TopicPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements
    )


@pytest.mark.browser
def test_dashboard_markdown_widgets_render_in_a_browser(synthesized: Synthesized) -> None:
    """CloudWatch renders text widgets as CommonMark: each one, rendered the same way, shows its heading and
    every `code` span in Chromium with no console error (an unbalanced backtick would swallow the rest)."""
    import re

    from markdown_it import MarkdownIt

    from tests.factories.browser import chromium, watched_page

    texts = [w["properties"]["markdown"] for w in _widgets(synthesized).values() if w["type"] == "text"]
    assert texts, "the dashboard has no text widget"
    renderer = MarkdownIt("commonmark", {"html": False})
    with chromium() as browser, watched_page(browser) as (page, problems):
        for markdown in texts:
            page.set_content(f"<!DOCTYPE html><html><body>{renderer.render(markdown)}</body></html>")
            headings = [h.lstrip("# ").strip() for h in markdown.splitlines() if h.startswith("#")]
            assert page.locator("h1, h2, h3").all_inner_texts() == headings
            assert page.locator("code").all_inner_texts() == re.findall(r"`([^`]+)`", markdown)
            assert "`" not in page.inner_text("body")
        assert problems.all() == []
