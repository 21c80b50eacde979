"""The scheduled meter_reporter Lambda: a real EventBridge scheduled event into the real handler, on moto,
with the in-memory meter sender (ENVIRONMENT is not production). Checks the run's answer, that a rerun
sends nothing, and the EMF metrics and correlation id the run logs."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from billing_platform.observability import logger
from local_stack.lambda_events import scheduled_event
from tests.factories.handlers import load_handler
from tests.factories.lambda_context import LambdaContext
from tests.integration.metering.test_meter_reporter import add_usage, subscribe


class ScheduledContext(LambdaContext):
    """The reporter's context: most of its 300 s timeout left (it stops claiming work in the last 30 s)."""

    def get_remaining_time_in_millis(self) -> int:
        return 280_000


def _event(event_id: str) -> dict[str, object]:
    return scheduled_event(
        rule_arn="arn:aws:events:us-east-1:123456789012:rule/MeterReporterSchedule",
        region="us-east-1",
        account="123456789012",
        event_id=event_id,
        time=datetime.now(UTC),
    )


def _emf(stdout: str) -> list[dict[str, object]]:
    blobs = []
    for line in stdout.splitlines():
        if line.startswith("{") and "_aws" in line:
            blobs.append(json.loads(line))
    return blobs


def test_scheduled_run_reports_usage_once_and_publishes_metrics(
    moto_aws: dict[str, str], request: pytest.FixtureRequest, capfd: pytest.CaptureFixture[str]
) -> None:
    logger.setLevel("INFO")
    # The JSON log lines go to the stream the logger was created with: read them from our own.
    lines = io.StringIO()
    previous = logger.registered_handler.setStream(lines)  # type: ignore[attr-defined]
    request.addfinalizer(lambda: logger.setLevel("WARNING"))
    request.addfinalizer(lambda: logger.registered_handler.setStream(previous))  # type: ignore[attr-defined]
    subscribe("t_sched", "cus_sched", "pro")
    hour = datetime.now(UTC) - timedelta(hours=2)
    add_usage("t_sched", "tokens", hour, "42")
    add_usage("t_sched", "api_calls", hour, "3")
    module = load_handler("meter_reporter")

    first = module.handler(_event("evt-run-1"), ScheduledContext(function_name="meter_reporter"))

    assert first["events_sent"] == 2
    assert first["units_reported"] == {"api_calls": "3", "tokens": "42"}
    assert first["lag_seconds"] == 0
    sender = module.sender()
    assert sender.total("tokens", "cus_sched") == 42

    out = capfd.readouterr().out
    metrics = {name for blob in _emf(out) for name in blob if name.startswith("Meter")}
    assert {"MeterEventsSent", "MeterEventsFailed", "MeterReporterLag", "MeterUnitsReported"} <= metrics
    logs = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert logs
    assert all(log.get("correlation_id") == "evt-run-1" for log in logs)
    delivered = [log for log in logs if log["message"] == "meter event delivered"]
    assert len(delivered) == 2
    assert {log["tenant_id"] for log in delivered} == {"t_sched"}

    second = module.handler(_event("evt-run-2"), ScheduledContext(function_name="meter_reporter"))
    assert second["events_sent"] == 0
    assert sender.total("tokens", "cus_sched") == 42


def test_a_run_near_the_timeout_claims_nothing(moto_aws: dict[str, str]) -> None:
    subscribe("t_late", "cus_late", "pro")
    add_usage("t_late", "tokens", datetime.now(UTC) - timedelta(hours=1), "5")
    module = load_handler("meter_reporter")

    result = module.handler(_event("evt-late"), LambdaContext(function_name="meter_reporter"))  # 30 s left

    assert result["stopped_early"] is True
    assert result["events_sent"] == 0
    assert result["lag_seconds"] > 0
