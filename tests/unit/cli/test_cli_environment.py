"""billing-admin without AWS: target resolution (stack outputs, local endpoints), time parsing, progress
and text rendering."""

from __future__ import annotations

import argparse
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from billing_platform import resources
from billing_platform.cli.environment import resolve_target, stack_outputs
from billing_platform.cli.main import _print, parse_when
from billing_platform.cli.progress import Progress
from billing_platform.errors import ConfigurationError

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class FakeCloudFormation:
    def __init__(self, outputs: dict[str, str] | None) -> None:
        self.outputs = outputs

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        if self.outputs is None:
            from botocore.exceptions import ClientError

            raise ClientError(
                {"Error": {"Code": "ValidationError", "Message": f"Stack {StackName} does not exist"}}, "DescribeStacks"
            )
        return {"Stacks": [{"Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in self.outputs.items()]}]}


def test_stack_outputs_become_the_functions_environment_variables() -> None:
    environ: dict[str, str] = {}
    cfn = FakeCloudFormation(
        {
            "BillingTableName": "b-1",
            "AggregatesTableName": "a-1",
            "UsageDlqUrl": "https://sqs/dlq",
            "StripeApiKeySecretArn": "arn:aws:secretsmanager:eu-west-1:1:secret:k",
            "ApiUrl": "https://api",
        }
    )

    target = resolve_target(stack_name="Billing", region="eu-west-1", environ=environ, cloudformation=cfn)

    assert target.source == "stack:Billing"
    assert target.settings.billing_table_name == "b-1"
    assert target.settings.aggregates_table_name == "a-1"
    assert target.settings.usage_dlq_url == "https://sqs/dlq"
    assert target.settings.is_production
    assert environ[resources.STRIPE_API_KEY_SECRET_ENV].endswith(":secret:k")
    assert environ["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert target.describe()["stripe"] == "api key set"


@pytest.mark.parametrize("outputs", [None, {"ApiUrl": "https://api"}], ids=["missing-stack", "not-a-billing-stack"])
def test_a_stack_that_is_not_there_or_not_ours_is_a_configuration_error(outputs: dict[str, str] | None) -> None:
    with pytest.raises(ConfigurationError):
        stack_outputs("Billing", client=FakeCloudFormation(outputs)) if outputs is None else resolve_target(
            stack_name="Billing", environ={}, cloudformation=FakeCloudFormation(outputs)
        )


def test_local_endpoints_need_no_aws_configuration_in_the_shell() -> None:
    environ: dict[str, str] = {}
    target = resolve_target(dynamodb_endpoint="http://127.0.0.1:8000", environ=environ)
    assert target.source == "local"
    assert environ["AWS_ENDPOINT_URL_DYNAMODB"] == "http://127.0.0.1:8000"
    assert environ["AWS_DEFAULT_REGION"] == "us-east-1"
    assert environ["AWS_ACCESS_KEY_ID"] == "local"
    assert target.settings.billing_table_name == resources.BILLING_TABLE.local_name


def test_local_endpoints_keep_the_operators_own_credentials() -> None:
    environ = {"AWS_ACCESS_KEY_ID": "mine", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "eu-west-1"}
    resolve_target(dynamodb_endpoint="http://127.0.0.1:8000", environ=environ)
    assert environ["AWS_ACCESS_KEY_ID"] == "mine"
    assert environ["AWS_DEFAULT_REGION"] == "eu-west-1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", NOW - timedelta(minutes=90)),
        ("24h", NOW - timedelta(hours=24)),
        ("7d", NOW - timedelta(days=7)),
        ("2026-11-24T10:00:00Z", datetime(2026, 11, 24, 10, tzinfo=UTC)),
        ("2026-11-24T10:00:00", datetime(2026, 11, 24, 10, tzinfo=UTC)),
        ("2026-11-24T12:00:00+02:00", datetime(2026, 11, 24, 10, tzinfo=UTC)),
    ],
)
def test_times_are_iso_or_relative_and_always_utc(text: str, expected: datetime) -> None:
    assert parse_when(text, NOW) == expected


def test_a_time_that_is_neither_is_bad_usage() -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_when("last tuesday", NOW)


def test_progress_prints_counts_to_its_stream_and_nothing_when_disabled() -> None:
    stream = io.StringIO()
    bar = Progress("redrive", total=20, stream=stream, every=0)
    bar.tick(10)
    bar.tick(10)
    bar.finish()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("redrive: 10/20")
    assert lines[-1].startswith("redrive: 20/20")
    assert lines[-1].endswith("done")
    quiet = io.StringIO()
    Progress("x", stream=quiet, enabled=False, every=0).tick()
    assert quiet.getvalue() == ""


def test_text_output_is_indented_key_value_lines() -> None:
    out = io.StringIO()
    _print(out, {"a": 1, "b": {"c": None, "d": []}, "e": [{"f": "g"}, "h"]}, as_json=False)
    assert out.getvalue().splitlines() == ["a: 1", "b:", "  c: -", "  d: (none)", "e:", "  -", "    f: g", "  - h"]
