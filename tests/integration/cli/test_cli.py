"""`billing-admin` end to end: `main(argv)` exactly as the console script runs it, against moto (and a
moto server standing in for the local stack's SQS), with Stripe as the real SDK over the fake transport.
Each test asserts the exit code, the printed result and the state left in the tables / queues."""

from __future__ import annotations

import io
import json
import os
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest

from billing_platform import resources
from billing_platform.catalog.models import DEFAULT_CATALOG
from billing_platform.cli.main import (
    EXIT_CONFIG,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_PROBLEMS,
    EXIT_USAGE,
    Dependencies,
    main,
)
from billing_platform.providers.meter_events import StripeMeterEvents
from billing_platform.providers.stripe import SyncStripeBillingProvider
from billing_platform.subscriptions.repository import SubscriptionRepository
from tests.factories.stripe import API_KEY, SubscriptionStory, stripe_client
from tests.integration.metering.test_meter_reporter import LockedHTTPClient, MeteredStripeApi, add_usage

NOW = datetime.now(UTC).replace(microsecond=0)


class Run:
    """One CLI invocation's exit code and output."""

    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)


def cli(*argv: str, deps: Dependencies | None = None, **overrides: Any) -> Run:
    out, err = io.StringIO(), io.StringIO()
    deps = deps or Dependencies()
    deps.stdout, deps.stderr = out, err
    for key, value in overrides.items():
        setattr(deps, key, value)
    code = main(list(argv), deps)
    return Run(code, out.getvalue(), err.getvalue())


@pytest.fixture
def stripe_api() -> MeteredStripeApi:
    return MeteredStripeApi()


@pytest.fixture
def stripe_deps(moto_aws: dict[str, str], env: pytest.MonkeyPatch, stripe_api: MeteredStripeApi) -> Dependencies:
    """The CLI's Stripe calls go through the real SDK to the fake Stripe."""
    env.setenv("STRIPE_SECRET_KEY", API_KEY)
    http = LockedHTTPClient(stripe_api)
    return Dependencies(
        stripe_provider=lambda s: SyncStripeBillingProvider(s, client=stripe_client(http), sleep=lambda _s: None),
        stripe_events=lambda s: StripeMeterEvents(s, client=stripe_client(http), sleep=lambda _s: None),
    )


# ----------------------------------------------------------------------------------------- catalog


def test_catalog_validate_accepts_the_packaged_catalog() -> None:
    run = cli("--json", "catalog", "validate")
    assert run.code == EXIT_OK
    assert run.json["valid"] is True
    assert run.json["plans"] == 3


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda c: c["plans"]["pro"]["quotas"].update(gpus={"limit": "1"}), "unknown resource type 'gpus'"),
        (lambda c: c["resource_types"]["tokens"].update(meter_event_name="api_calls"), "share meter_event_name"),
        (lambda c: c["plans"]["free"]["quotas"]["tokens"].update(limit=None), "a hard quota needs a limit"),
        (lambda c: c.update(default_plan="gold"), "default_plan 'gold' is not a plan"),
    ],
    ids=["unknown-resource", "shared-meter", "hard-without-limit", "bad-default"],
)
def test_catalog_validate_reports_what_is_wrong_and_exits_1(tmp_path: Path, mutate: Any, expected: str) -> None:
    catalog = json.loads(DEFAULT_CATALOG.read_text())
    mutate(catalog)
    path = tmp_path / "plans.json"
    path.write_text(json.dumps(catalog))

    run = cli("catalog", "validate", "--file", str(path))

    assert run.code == EXIT_PROBLEMS
    assert "valid: False" in run.stdout
    assert expected in run.stdout


def test_catalog_validate_on_a_file_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "plans.json"
    path.write_text("{ not json")
    run = cli("--json", "catalog", "validate", "--file", str(path))
    assert run.code == EXIT_PROBLEMS
    assert run.json["errors"][0].startswith("not JSON")


def test_bad_usage_exits_2() -> None:
    assert cli("tenant").code == EXIT_USAGE
    assert cli("stripe", "replay", "--since", "yesterday-ish").code == EXIT_USAGE


# ----------------------------------------------------------------------------------------- targets


def test_stack_name_reads_the_deployed_stacks_outputs(moto_aws: dict[str, str]) -> None:
    cfn = boto3.client("cloudformation", region_name="us-east-1")
    outputs = {
        "BillingTableName": "prod-billing-123",
        "UsageTableName": "prod-usage-123",
        "AggregatesTableName": "prod-aggregates-123",
        "UsageQueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/prod-usage",
        "UsageDlqUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/prod-usage-dlq",
    }
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    cfn.create_stack(StackName="BillingPlatform", TemplateBody=json.dumps(template))
    environ = dict(os.environ)

    run = cli("--json", "--stack-name", "BillingPlatform", "config", "show", environ=environ)

    assert run.code == EXIT_OK, run.stderr
    assert run.json["source"] == "stack:BillingPlatform"
    assert run.json["billing_table"] == "prod-billing-123"
    assert run.json["usage_dlq"] == outputs["UsageDlqUrl"]
    assert environ[resources.AGGREGATES_TABLE.env_var] == "prod-aggregates-123"


def test_a_missing_stack_is_a_configuration_error(moto_aws: dict[str, str]) -> None:
    run = cli("--stack-name", "NoSuchStack", "config", "show", environ=dict(os.environ))
    assert run.code == EXIT_CONFIG
    assert "NoSuchStack" in run.stderr


def test_dlq_commands_without_a_queue_are_a_configuration_error(env: pytest.MonkeyPatch) -> None:
    for var in (resources.USAGE_QUEUE.env_var, resources.USAGE_QUEUE.dlq_env_var):
        env.delenv(var, raising=False)
    run = cli("dlq", "status", environ={k: v for k, v in os.environ.items() if not k.startswith("USAGE_")})
    assert run.code == EXIT_CONFIG


# ----------------------------------------------------------------------------------------- DLQ


def _fill_dlq(sqs: Any, dlq_url: str, count: int) -> list[str]:
    bodies = [json.dumps({"v": 1, "records": [{"record_id": f"r{i}"}]}) for i in range(count)]
    for start in range(0, count, 10):
        sqs.send_message_batch(
            QueueUrl=dlq_url,
            Entries=[
                {
                    "Id": str(i),
                    "MessageBody": body,
                    "MessageAttributes": {"tenant": {"DataType": "String", "StringValue": "t1"}},
                }
                for i, body in enumerate(bodies[start : start + 10])
            ],
        )
    return bodies


def _drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get(
            "Messages", []
        )
        if not batch:
            return out
        out += batch
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]} for m in batch]
        )


def test_dlq_redrive_moves_every_message_back_with_its_attributes(moto_aws: dict[str, str]) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    dlq, queue = moto_aws[resources.USAGE_QUEUE.dlq_env_var], moto_aws[resources.USAGE_QUEUE.env_var]
    bodies = _fill_dlq(sqs, dlq, 25)

    status = cli("--json", "dlq", "status")
    assert status.json["usage_dlq"]["visible"] == 25

    dry = cli("--json", "dlq", "redrive", "--dry-run")
    assert dry.code == EXIT_OK
    assert dry.json["moved"] == 0
    assert len(dry.json["sample"]) == 3

    partial = cli("--json", "dlq", "redrive", "--max", "10")
    assert partial.json["moved"] == 10
    assert "redrive: 10/10" in partial.stderr  # progress on stderr

    rest = cli("--json", "--quiet", "dlq", "redrive")
    assert rest.code == EXIT_OK
    assert rest.json["moved"] == 15
    assert rest.stderr == ""

    moved = _drain(sqs, queue)
    assert sorted(m["Body"] for m in moved) == sorted(bodies)
    assert all(m["MessageAttributes"]["tenant"]["StringValue"] == "t1" for m in moved)
    assert _drain(sqs, dlq) == []


def test_dlq_redrive_against_the_local_stack_finds_its_queues_by_name(env: pytest.MonkeyPatch) -> None:
    """The local stack runs SQS on a moto server; `--sqs-endpoint` is all the CLI needs."""
    from moto.server import ThreadedMotoServer

    from local_stack.dynamodb_local import free_port
    from local_stack.provision import create_queue

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
        urls = create_queue(sqs, resources.USAGE_QUEUE)
        _fill_dlq(sqs, urls[resources.USAGE_QUEUE.dlq_env_var], 12)
        # The CLI exports what it resolves to os.environ (the layer's clients read it); the env fixture
        # undoes that for the names it touched first.
        for var in (resources.USAGE_QUEUE.env_var, resources.USAGE_QUEUE.dlq_env_var, "AWS_ENDPOINT_URL_SQS"):
            env.setenv(var, "")  # recorded, so undone even though the CLI rewrites it
            env.delenv(var)

        run = cli("--json", "--sqs-endpoint", endpoint, "dlq", "redrive")

        assert run.code == EXIT_OK, run.stderr
        assert run.json["moved"] == 12
        assert run.json["target"] == urls[resources.USAGE_QUEUE.env_var]
        assert len(_drain(sqs, urls[resources.USAGE_QUEUE.env_var])) == 12
    finally:
        server.stop()


# ----------------------------------------------------------------------------------------- Stripe


@pytest.fixture
def story(stripe_api: MeteredStripeApi) -> SubscriptionStory:
    start = int(time.time()) - 3 * 3600
    return SubscriptionStory(stripe_api, "t_replay", start=start)


def test_replay_applies_missed_events_through_the_webhook_path_once(
    stripe_deps: Dependencies, stripe_api: MeteredStripeApi, story: SubscriptionStory
) -> None:
    stripe_api.events += [story.customer_created(), *story.subscribe("price_pro_monthly")]
    stripe_api.events.append(story.change_price("price_enterprise_monthly"))
    old = story.customer_created()
    old["created"] = int(time.time()) - 3 * 86_400  # before --since: not listed
    stripe_api.events.append(old)

    dry = cli("--json", "stripe", "replay", "--since", "1d", "--dry-run", deps=stripe_deps)
    assert dry.code == EXIT_OK
    assert dry.json["outcomes"] == {"would_apply": 4}
    assert SubscriptionRepository().get_subscription("t_replay") is None

    run = cli("--json", "stripe", "replay", "--since", "1d", deps=stripe_deps)

    assert run.code == EXIT_OK, run.stderr
    assert run.json["listed"] == 4
    assert run.json["outcomes"]["applied"] == 3
    assert "replay: 4" in run.stderr
    record = SubscriptionRepository().get_subscription("t_replay")
    assert record is not None
    assert record.plan_id == "enterprise"
    assert record.status == "active"

    again = cli("--json", "stripe", "replay", "--since", "1d", deps=stripe_deps)
    assert again.code == EXIT_OK
    assert again.json["outcomes"] == {"duplicate": 4}


def test_replay_reports_failing_events_and_exits_1(
    stripe_deps: Dependencies, stripe_api: MeteredStripeApi, story: SubscriptionStory
) -> None:
    stripe_api.events += story.subscribe("price_not_in_the_catalog")

    run = cli(
        "--json", "stripe", "replay", "--since", "1d", "--type", "customer.subscription.created", deps=stripe_deps
    )

    assert run.code == EXIT_PROBLEMS
    assert run.json["listed"] == 1
    assert run.json["failed"][0]["event_id"] == stripe_api.events[0]["id"]
    assert SubscriptionRepository().get_subscription("t_replay") is None


def test_reconcile_finds_drift_and_fixes_it_through_the_webhook_processor(
    stripe_deps: Dependencies, stripe_api: MeteredStripeApi, story: SubscriptionStory
) -> None:
    stripe_api.events += [story.customer_created(), *story.subscribe("price_pro_monthly")]
    assert cli("stripe", "replay", "--since", "1d", deps=stripe_deps).code == EXIT_OK
    in_sync = cli("--json", "tenant", "reconcile", "t_replay", deps=stripe_deps)
    assert in_sync.code == EXIT_OK
    assert in_sync.json["in_sync"] is True

    # Stripe moved on and its webhook never arrived.
    story.change_price("price_enterprise_monthly")
    story.sub["status"] = "past_due"  # type: ignore[index]

    drift = cli("--json", "tenant", "reconcile", "t_replay", deps=stripe_deps)
    assert drift.code == EXIT_PROBLEMS
    assert set(drift.json["drift"]) == {"status", "price_id"}
    assert SubscriptionRepository().get_subscription("t_replay").status == "active"  # type: ignore[union-attr]

    fixed = cli("--json", "tenant", "reconcile", "t_replay", "--apply", deps=stripe_deps)
    assert fixed.code == EXIT_OK, fixed.stdout
    assert fixed.json["applied"] is True
    record = SubscriptionRepository().get_subscription("t_replay")
    assert record is not None
    assert (record.status, record.plan_id) == ("past_due", "enterprise")
    assert cli("--json", "tenant", "reconcile", "t_replay", deps=stripe_deps).json["in_sync"] is True


def test_reconcile_of_a_tenant_without_subscription_is_not_found(stripe_deps: Dependencies) -> None:
    run = cli("tenant", "reconcile", "t_unknown", deps=stripe_deps)
    assert run.code == EXIT_NOT_FOUND


# ----------------------------------------------------------------------------------------- tenant show / meter run


def test_tenant_show_and_meter_run(
    stripe_deps: Dependencies, stripe_api: MeteredStripeApi, story: SubscriptionStory
) -> None:
    stripe_api.events += [story.customer_created(), *story.subscribe("price_pro_monthly")]
    assert cli("stripe", "replay", "--since", "1d", deps=stripe_deps).code == EXIT_OK
    add_usage("t_replay", "tokens", NOW - timedelta(hours=1), "1500")
    add_usage("t_replay", "executions", NOW - timedelta(days=1), "4")

    metered = cli("--json", "meter", "run", "--lookback-days", "2", deps=stripe_deps)
    assert metered.code == EXIT_OK
    assert metered.json["events_sent"] == 1
    assert "meter run (tenant-days): 1/1" in metered.stderr
    assert stripe_api.billed("tokens", story.customer_id) == Decimal(1500)

    shown = cli("--json", "tenant", "show", "t_replay", "--days", "3", deps=stripe_deps)

    assert shown.code == EXIT_OK, shown.stderr
    body = shown.json
    assert body["profile"]["customer_id"] == story.customer_id
    assert body["subscription"]["plan_id"] == "pro"
    assert {q["resource_type"] for q in body["entitlements"]["quotas"]} >= {"tokens", "executions"}
    assert body["usage"]["tokens"]["total"] == "1500"
    assert body["usage"]["executions"]["total"] == "4"
    assert body["metered"]["tokens"] == {"reported": "1500", "open_claims": 0}

    text = cli("tenant", "show", "t_replay", deps=stripe_deps)
    assert "subscription:" in text.stdout
    assert "plan_id: pro" in text.stdout


def test_tenant_show_of_an_unknown_tenant_exits_4(moto_aws: dict[str, str]) -> None:
    run = cli("tenant", "show", "t_nobody")
    assert run.code == EXIT_NOT_FOUND
    assert "t_nobody" in run.stderr


@pytest.mark.ddblocal
def test_tenant_show_against_the_local_stacks_dynamodb_endpoint(
    ddb_local_tables: dict[str, str], dynamodb_local: Any, env: pytest.MonkeyPatch
) -> None:
    """The local stack's DynamoDB Local, reached by `--dynamodb-endpoint` as its banner prints it."""
    from tests.integration.metering.test_meter_reporter import subscribe

    subscribe("t_local", "cus_local", "pro")
    add_usage("t_local", "api_calls", NOW - timedelta(hours=3), "11")
    env.setenv("AWS_ENDPOINT_URL_DYNAMODB", "")  # recorded, so the CLI's export is undone afterwards
    env.delenv("AWS_ENDPOINT_URL_DYNAMODB")

    run = cli("--json", "--dynamodb-endpoint", dynamodb_local.endpoint_url, "tenant", "show", "t_local")

    assert run.code == EXIT_OK, run.stderr
    assert run.json["subscription"]["customer_id"] == "cus_local"
    assert run.json["usage"]["api_calls"]["total"] == "11"


def test_reconcile_reapplies_an_entitlement_effect_that_was_lost(
    stripe_deps: Dependencies, stripe_api: MeteredStripeApi, story: SubscriptionStory
) -> None:
    from billing_platform.entitlements.service import EntitlementService

    stripe_api.events += [story.customer_created(), *story.subscribe("price_pro_monthly")]
    assert cli("stripe", "replay", "--since", "1d", deps=stripe_deps).code == EXIT_OK
    service = EntitlementService()
    service.suspend("t_replay", reason="lost write stand-in")  # the record still says apply_plan (pro)

    drift = cli("--json", "tenant", "reconcile", "t_replay", deps=stripe_deps)
    assert drift.code == EXIT_PROBLEMS
    assert drift.json["drift"] == {}
    assert drift.json["entitlement_drift"]["found"]["status"] == "suspended"

    fixed = cli("--json", "tenant", "reconcile", "t_replay", "--apply", deps=stripe_deps)
    assert fixed.code == EXIT_OK, fixed.stdout
    assert fixed.json["outcome"] == "entitlements:apply_plan"
    plan = EntitlementService().plan_for("t_replay", fresh=True)
    assert (plan.plan_id, plan.status) == ("pro", "active")
    assert cli("--json", "tenant", "reconcile", "t_replay", deps=stripe_deps).json["in_sync"] is True


def test_a_claim_stripe_refuses_for_good_can_be_dropped_and_is_then_reported_afresh(
    stripe_deps: Dependencies, stripe_api: MeteredStripeApi, story: SubscriptionStory, env: pytest.MonkeyPatch
) -> None:
    from billing_platform.audit.log import AuditLog
    from tests.integration.metering.test_meter_reporter import subscribe

    subscribe("t_stuck", "cus_gone", "pro")
    hour = (NOW - timedelta(hours=2)).replace(minute=0, second=0)
    add_usage("t_stuck", "tokens", hour, "12")
    http = LockedHTTPClient(stripe_api)
    http.fail_next(400, "invalid_request_error", code="resource_missing", message="No such customer: 'cus_gone'")
    stripe_deps.stripe_events = lambda s: StripeMeterEvents(s, client=stripe_client(http), sleep=lambda _s: None)

    refused = cli("--json", "meter", "run", "--lookback-days", "1", deps=stripe_deps)
    assert refused.code == EXIT_PROBLEMS
    label = hour.strftime("%Y-%m-%dT%H")
    assert refused.json["failures"] == [
        {"tenant_id": "t_stuck", "resource": "tokens", "hour": label, "error": "provider_not_found"}
    ]
    assert cli("--json", "tenant", "show", "t_stuck").json["metered"]["tokens"]["open_claims"] == 1

    dropped = cli("--json", "meter", "drop-claim", "t_stuck", "tokens", label, "--actor", "ada", deps=stripe_deps)
    assert dropped.code == EXIT_OK, dropped.stderr
    assert dropped.json["dropped"]["customer_id"] == "cus_gone"
    (entry,) = AuditLog().page("t_stuck", limit=10, cursor=None).entries
    assert (entry.action, entry.actor) == ("meter.drop_claim", "cli:ada")
    assert cli("meter", "drop-claim", "t_stuck", "tokens", label, deps=stripe_deps).code == EXIT_NOT_FOUND

    again = cli("--json", "meter", "run", "--lookback-days", "1", deps=stripe_deps)
    assert again.code == EXIT_OK
    assert stripe_api.billed("tokens", "cus_gone") == 12
    assert len(stripe_api.meter_events) == 1
