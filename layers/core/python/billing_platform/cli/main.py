"""`billing-admin`: operator commands for the billing platform.

    billing-admin [target options] catalog validate [--file PATH]
    billing-admin [target options] tenant show TENANT [--days N]
    billing-admin [target options] tenant reconcile TENANT [--subscription-id SUB] [--apply]
    billing-admin [target options] dlq status | dlq redrive [--max N] [--dry-run]
    billing-admin [target options] stripe replay --since WHEN [--until WHEN] [--type T ...] [--dry-run]
    billing-admin [target options] meter run [--lookback-days N]
    billing-admin [target options] meter drop-claim TENANT RESOURCE HOUR
    billing-admin [target options] freshness [--tenant TENANT]
    billing-admin [target options] invoice compare TENANT
    billing-admin [target options] usage rebuild FIRST_DAY LAST_DAY [--state PATH] [--max-pairs N]
    billing-admin [target options] config show

Target: `--stack-name NAME` reads a deployed stack's CloudFormation outputs (tables, queues, Stripe
secret ARNs); `--dynamodb-endpoint/--sqs-endpoint URL` point at the local stack's emulators; otherwise
the environment variables the Lambda functions read (BILLING_TABLE_NAME, USAGE_DLQ_URL, STRIPE_SECRET_KEY
...). Results go to stdout (`--json` for machines), progress to stderr.

Exit codes: 0 done / in sync; 1 the command ran and found problems (invalid catalog, drift not applied,
events or messages that failed); 2 bad usage; 3 configuration (no stack, nothing to talk to);
4 not found; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

from billing_platform.errors import BillingError, NotFoundError
from billing_platform.settings import Settings

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_NOT_FOUND = 4
EXIT_INTERRUPTED = 130
METER_WORKERS = 8  # as the scheduled function

EXIT_CODES_HELP = (
    "exit codes: 0 done / in sync, 1 problems found, 2 bad usage, 3 configuration, 4 not found, 130 interrupted"
)
_RELATIVE = re.compile(r"^(\d+)([mhd])$")


def _default_provider(settings: Settings) -> Any:
    from billing_platform.providers.stripe import SyncStripeBillingProvider

    return SyncStripeBillingProvider(settings)


def _default_event_source(settings: Settings) -> Any:
    from billing_platform.providers.meter_events import StripeMeterEvents

    return StripeMeterEvents(settings)


@dataclass
class Dependencies:
    """What the CLI reaches beyond AWS clients; tests inject fakes (the real SDK over a fake transport)."""

    stripe_provider: Callable[[Settings], Any] = _default_provider
    stripe_events: Callable[[Settings], Any] = _default_event_source
    cloudformation: Any = None
    environ: MutableMapping[str, str] | None = None
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


def parse_when(text: str, now: datetime) -> datetime:
    """ISO 8601 (naive means UTC) or relative to now: `90m`, `24h`, `7d`."""
    match = _RELATIVE.match(text.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return now - {"m": timedelta(minutes=amount), "h": timedelta(hours=amount), "d": timedelta(days=amount)}[unit]
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time: {text!r} (ISO 8601, or 90m / 24h / 7d ago)") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="billing-admin",
        description="Operator tools for the billing platform.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXIT_CODES_HELP,
    )
    target = parser.add_argument_group("target")
    target.add_argument("--stack-name", help="deployed stack: read its CloudFormation outputs")
    target.add_argument("--region", help="AWS region of the stack")
    target.add_argument("--dynamodb-endpoint", metavar="URL", help="local stack: DynamoDB Local endpoint")
    target.add_argument("--sqs-endpoint", metavar="URL", help="local stack: moto (SQS) endpoint")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    catalog = commands.add_parser("catalog", help="plan catalog").add_subparsers(dest="action", required=True)
    validate = catalog.add_parser("validate", help="validate a plan catalog file")
    validate.add_argument("--file", help="catalog JSON (default: PLAN_CATALOG_PATH or the packaged plans.json)")

    tenant = commands.add_parser("tenant", help="one tenant").add_subparsers(dest="action", required=True)
    show = tenant.add_parser("show", help="subscription, quotas, recent usage and metering of a tenant")
    show.add_argument("tenant_id")
    show.add_argument("--days", type=int, default=7, choices=range(1, 367), metavar="N", help="usage days (7)")
    tenant.add_parser(
        "backfill-directory", help="list in the console's tenant directory every tenant onboarded before it existed"
    )
    reconcile = tenant.add_parser("reconcile", help="compare the stored subscription with Stripe's")
    reconcile.add_argument("tenant_id")
    reconcile.add_argument("--subscription-id", help="Stripe subscription to adopt when none is stored")
    reconcile.add_argument("--apply", action="store_true", help="fix drift through the webhook path")

    dlq = commands.add_parser("dlq", help="usage dead-letter queue").add_subparsers(dest="action", required=True)
    dlq.add_parser("status", help="depth of the usage queue and its DLQ")
    redrive = dlq.add_parser("redrive", help="move DLQ messages back to the usage queue")
    redrive.add_argument("--max", type=int, default=None, metavar="N", help="move at most N messages")
    redrive.add_argument("--dry-run", action="store_true", help="count and sample, move nothing")

    stripe = commands.add_parser("stripe", help="Stripe events").add_subparsers(dest="action", required=True)
    replay = stripe.add_parser("replay", help="re-apply Stripe events through the webhook processor")
    replay.add_argument("--since", required=True, help="ISO 8601 time or 90m / 24h / 7d (Stripe keeps 30 days)")
    replay.add_argument("--until", help="ISO 8601 time or relative (default: now)")
    replay.add_argument("--type", action="append", default=[], dest="types", help="event type (repeatable)")
    replay.add_argument("--dry-run", action="store_true", help="list and classify against the ledger only")

    meter = commands.add_parser("meter", help="Stripe meter reporting").add_subparsers(dest="action", required=True)
    run = meter.add_parser("run", help="report unreported metered usage now (same code as the scheduled run)")
    run.add_argument("--lookback-days", type=int, default=35, choices=range(0, 36), metavar="N")
    drop = meter.add_parser("drop-claim", help="drop a meter claim Stripe refused for good (audited)")
    drop.add_argument("tenant_id")
    drop.add_argument("resource_type")
    drop.add_argument("hour", help="the hour bucket, e.g. 2026-11-25T10")
    drop.add_argument("--actor", default=os.environ.get("USER", "operator"), help="who, for the audit log")

    fresh = commands.add_parser(
        "freshness", help="how far behind each usage pipeline stage is (the figures the alarms watch)"
    )
    fresh.add_argument("--tenant", dest="tenant_id", help="also the tenant's last hours reported to Stripe")

    invoice = commands.add_parser("invoice", help="invoice previews").add_subparsers(dest="action", required=True)
    compare = invoice.add_parser("compare", help="the platform's invoice preview beside Stripe's (test mode)")
    compare.add_argument("tenant_id")

    usage = commands.add_parser("usage", help="the usage read model").add_subparsers(dest="action", required=True)
    rebuild = usage.add_parser(
        "rebuild", help="re-derive the read model of a range of days from the raw records (beside live traffic)"
    )
    rebuild.add_argument("first_day", help="first UTC day, yyyy-mm-dd")
    rebuild.add_argument("last_day", help="last UTC day, yyyy-mm-dd (inclusive)")
    rebuild.add_argument("--state", type=Path, help="state file: resume an interrupted run from it")
    rebuild.add_argument("--max-pairs", type=int, help="stop after this many tenant x resource pairs")

    config = commands.add_parser("config", help="where the CLI points").add_subparsers(dest="action", required=True)
    config.add_parser("show", help="the resolved target")
    return parser


def main(argv: Sequence[str] | None = None, deps: Dependencies | None = None) -> int:
    """Run one command; returns the exit code (the console script exits with it)."""
    deps = deps or Dependencies()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or bad usage (2)
        return int(exc.code or 0)
    try:
        code, result = _dispatch(args, deps)
    except KeyboardInterrupt:
        deps.stderr.write("interrupted\n")
        return EXIT_INTERRUPTED
    except argparse.ArgumentTypeError as exc:
        deps.stderr.write(f"billing-admin: {exc}\n")
        return EXIT_USAGE
    except (NoRegionError, NoCredentialsError, EndpointConnectionError) as exc:
        deps.stderr.write(f"billing-admin: configuration_error: {exc}\n")
        return EXIT_CONFIG
    except (BotoCoreError, ClientError) as exc:
        deps.stderr.write(f"billing-admin: aws_error: {exc}\n")
        return EXIT_PROBLEMS
    except BillingError as exc:
        from billing_platform.errors import ConfigurationError

        deps.stderr.write(f"billing-admin: {exc.code}: {exc.message}\n")
        if isinstance(exc, ConfigurationError):
            return EXIT_CONFIG
        return EXIT_NOT_FOUND if isinstance(exc, NotFoundError) else EXIT_PROBLEMS
    _print(deps.stdout, result, as_json=args.json)
    return code


def _dispatch(args: argparse.Namespace, deps: Dependencies) -> tuple[int, Any]:
    from billing_platform.cli.progress import Progress

    if args.command == "catalog":
        from billing_platform.cli.catalog import validate_catalog
        from billing_platform.settings import Settings as _Settings

        environ = os.environ if deps.environ is None else deps.environ
        path = args.file or _Settings.from_env(dict(environ)).plan_catalog_path
        report = validate_catalog(path)
        return (EXIT_OK if report.ok else EXIT_PROBLEMS), report.to_dict()

    from billing_platform.cli.environment import require, resolve_target

    target = resolve_target(
        stack_name=args.stack_name,
        region=args.region,
        dynamodb_endpoint=args.dynamodb_endpoint,
        sqs_endpoint=args.sqs_endpoint,
        environ=deps.environ,
        cloudformation=deps.cloudformation,
    )
    settings = target.settings
    progress_enabled = not args.quiet

    if args.command == "config":
        return EXIT_OK, target.describe()

    if args.command == "tenant" and args.action == "show":
        from billing_platform.cli.tenant import show_tenant

        shown = show_tenant(args.tenant_id, settings, days=args.days, now=deps.clock())
        if not (shown["profile"] or shown["subscription"] or shown["usage"]):
            raise NotFoundError(f"tenant {args.tenant_id} has no billing profile, subscription or recent usage")
        return EXIT_OK, shown

    if args.command == "tenant" and args.action == "backfill-directory":
        from billing_platform.tenants.repository import TenantDirectoryRepository
        from billing_platform.tenants.service import backfill_directory

        return EXIT_OK, backfill_directory(TenantDirectoryRepository(settings)).to_dict()

    if args.command == "tenant" and args.action == "reconcile":
        from billing_platform.cli.reconcile import reconcile_tenant
        from billing_platform.entitlements.service import EntitlementService
        from billing_platform.subscriptions.repository import SubscriptionRepository
        from billing_platform.subscriptions.webhooks import WebhookProcessor

        provider = deps.stripe_provider(settings)
        repository = SubscriptionRepository(settings)
        entitlements = EntitlementService(settings)
        processor = None
        if args.apply:
            processor = WebhookProcessor(provider, settings=settings, entitlements=entitlements)
        reconciled = reconcile_tenant(
            args.tenant_id,
            provider,
            repository,
            processor,
            entitlements=entitlements,
            catalog=settings.catalog,
            subscription_id=args.subscription_id,
            apply=args.apply,
            clock=deps.clock,
        )
        ok = reconciled.in_sync or reconciled.applied
        return (EXIT_OK if ok else EXIT_PROBLEMS), reconciled.to_dict()

    if args.command == "freshness":
        from billing_platform.freshness.service import FreshnessService

        freshness = FreshnessService(settings).report(args.tenant_id, now=deps.clock())
        figures = (
            freshness.usage_queue_oldest_message_age,
            freshness.aggregator_iterator_age,
            freshness.meter_reporter_lag,
            freshness.usage_dlq_depth,
            freshness.webhook_dlq_depth,
        )
        late = any(f.level == "late" for f in figures)
        return (EXIT_PROBLEMS if late else EXIT_OK), freshness.model_dump()

    if args.command == "invoice":
        from billing_platform.cli.invoices import compare, require_test_key
        from billing_platform.costs.service import CostService
        from billing_platform.entitlements.service import EntitlementService
        from billing_platform.subscriptions.repository import SubscriptionRepository

        require_test_key(settings.stripe_secret_key)
        customer_id = SubscriptionRepository(settings).customer_for_tenant(args.tenant_id)
        if customer_id is None:
            raise NotFoundError(f"tenant {args.tenant_id} has no Stripe customer")
        from billing_platform.usage.queries import SyncUsageAggregator

        costs = CostService(EntitlementService(settings), SyncUsageAggregator(settings=settings))
        preview = costs.invoice_preview(args.tenant_id)
        upcoming = deps.stripe_provider(settings).upcoming_invoice(customer_id)
        compared = compare(args.tenant_id, customer_id, preview, upcoming)
        return (EXIT_OK if compared.in_sync else EXIT_PROBLEMS), compared.to_dict()

    if args.command == "dlq":
        from billing_platform.cli.dlq import QueueRepository, redrive

        dlq_url = require(settings.usage_dlq_url, "the usage DLQ", "--stack-name, --sqs-endpoint or USAGE_DLQ_URL")
        queue_url = require(
            settings.usage_queue_url, "the usage queue", "--stack-name, --sqs-endpoint or USAGE_QUEUE_URL"
        )
        queues = QueueRepository()
        if args.action == "status":
            return EXIT_OK, {"usage_queue": queues.depth(queue_url), "usage_dlq": queues.depth(dlq_url)}
        bar = Progress("redrive", total=args.max, stream=deps.stderr, enabled=progress_enabled)
        moved = redrive(queues, dlq_url, queue_url, max_messages=args.max, dry_run=args.dry_run, on_batch=bar.tick)
        bar.finish()
        return (EXIT_OK if moved.send_failed == 0 else EXIT_PROBLEMS), moved.to_dict()

    if args.command == "stripe":
        from billing_platform.cli.replay import replay_events
        from billing_platform.subscriptions.repository import SubscriptionRepository
        from billing_platform.subscriptions.webhooks import WebhookProcessor

        now = deps.clock()
        since = parse_when(args.since, now)
        until = parse_when(args.until, now) if args.until else None
        repository = SubscriptionRepository(settings)
        processor = None
        if not args.dry_run:
            processor = WebhookProcessor(deps.stripe_provider(settings), settings=settings)
        bar = Progress("replay", stream=deps.stderr, enabled=progress_enabled)
        replayed = replay_events(
            deps.stripe_events(settings),
            processor,
            since=since,
            until=until,
            types=tuple(args.types),
            ledger=repository,
            dry_run=args.dry_run,
            on_event=lambda outcome: bar.tick(note=outcome),
        )
        bar.finish()
        return (EXIT_OK if replayed.ok else EXIT_PROBLEMS), replayed.to_dict()

    if args.command == "usage":
        from billing_platform.usage.rebuild import UsageRebuild

        bar = Progress("usage rebuild (tenant x resource pairs)", stream=deps.stderr, enabled=progress_enabled)
        rebuilt = UsageRebuild(settings, clock=deps.clock).run(
            args.first_day, args.last_day, state_path=args.state, progress=bar.update, max_pairs=args.max_pairs
        )
        bar.finish()
        return (EXIT_OK if not rebuilt.left else EXIT_PROBLEMS), asdict(rebuilt)

    if args.command == "meter" and args.action == "drop-claim":
        from billing_platform.cli.claims import drop_claim

        dropped = drop_claim(args.tenant_id, args.resource_type, args.hour, settings, actor=f"cli:{args.actor}")
        return EXIT_OK, dropped

    if args.command == "meter":
        from billing_platform.metering.service import MeterReporter

        bar = Progress("meter run (tenant-days)", stream=deps.stderr, enabled=progress_enabled)
        reporter = MeterReporter(
            deps.stripe_events(settings),
            settings=settings,
            lookback_days=args.lookback_days,
            workers=METER_WORKERS,
            on_progress=bar.update,
        )
        run = reporter.run()
        bar.finish()
        return (EXIT_OK if run.events_failed == 0 else EXIT_PROBLEMS), run.to_dict()

    raise argparse.ArgumentTypeError(f"unknown command {args.command} {getattr(args, 'action', '')}")


def _print(stream: TextIO, result: Any, *, as_json: bool) -> None:
    if as_json:
        stream.write(json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
    else:
        _render(stream, result, 0)
    stream.flush()


def _render(stream: TextIO, value: Any, indent: int) -> None:
    pad = "  " * indent
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                stream.write(f"{pad}{key}:\n")
                _render(stream, item, indent + 1)
            else:
                stream.write(f"{pad}{key}: {_scalar(item)}\n")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list):
                stream.write(f"{pad}-\n")
                _render(stream, item, indent + 1)
            else:
                stream.write(f"{pad}- {_scalar(item)}\n")
    else:
        stream.write(f"{pad}{_scalar(value)}\n")


def _scalar(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return "(none)"
    return str(value)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
