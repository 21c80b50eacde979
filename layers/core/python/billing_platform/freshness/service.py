"""The freshness report: each figure with the alarm threshold it is judged by."""

from __future__ import annotations

from datetime import UTC, datetime

from billing_platform import resources
from billing_platform.dynamodb import utc_now
from billing_platform.errors import ValidationError
from billing_platform.freshness.models import (
    DLQ_DEPTH_THRESHOLD,
    ITERATOR_AGE_THRESHOLD_SECONDS,
    METER_LAG_THRESHOLD_SECONDS,
    QUEUE_AGE_THRESHOLD_SECONDS,
    judge,
)
from billing_platform.freshness.repository import FreshnessRepository
from billing_platform.freshness.schemas import (
    FigureOut,
    FreshnessOut,
    MeterRunOut,
    TenantFreshnessOut,
    TenantMeterOut,
)
from billing_platform.settings import Settings, get_settings

SQS_NAMESPACE = "AWS/SQS"
LAMBDA_NAMESPACE = "AWS/Lambda"
OLDEST_MESSAGE_METRIC = "ApproximateAgeOfOldestMessage"
ITERATOR_AGE_METRIC = "IteratorAge"


def _figure(value: float | None, threshold: float, source: str) -> FigureOut:
    return FigureOut(value=value, threshold=threshold, level=judge(value, threshold).value, source=source)


def queue_name(queue_url: str) -> str:
    return queue_url.rstrip("/").rsplit("/", 1)[-1]


class FreshnessService:
    def __init__(self, settings: Settings | None = None, repository: FreshnessRepository | None = None) -> None:
        self._settings = settings or get_settings()
        self._repository = repository or FreshnessRepository(self._settings)

    def report(self, tenant_id: str | None = None, *, now: datetime | None = None) -> FreshnessOut:
        settings = self._settings
        if not (settings.usage_queue_url and settings.usage_dlq_url and settings.webhook_dlq_url):
            raise ValidationError("the usage queue, its DLQ and the webhook DLQ must be configured")
        moment = (now or utc_now()).astimezone(UTC)
        repo = self._repository
        usage_queue = queue_name(settings.usage_queue_url)
        oldest = repo.metric_maximum(SQS_NAMESPACE, OLDEST_MESSAGE_METRIC, ("QueueName", usage_queue), moment)
        iterator_ms = repo.metric_maximum(
            LAMBDA_NAMESPACE, ITERATOR_AGE_METRIC, ("FunctionName", settings.aggregator_function_name), moment
        )
        depth = repo.queue_depth(settings.usage_queue_url)
        run = repo.meter_run()
        # A reporter that stopped running is as late as one that found old usage: past its schedule, the
        # time since its last run counts too (the alarm treats missing lag data as breaching).
        schedule = (resources.METER_REPORTER.schedule_minutes or 0) * 60
        lag = None if run is None else max(run.lag_seconds, (moment - run.started_at).total_seconds() - schedule)
        usage_dlq = repo.queue_depth(settings.usage_dlq_url)
        webhook_dlq = repo.queue_depth(settings.webhook_dlq_url)
        return FreshnessOut(
            at=moment.isoformat(),
            usage_queue_oldest_message_age=_figure(
                oldest, QUEUE_AGE_THRESHOLD_SECONDS, f"{SQS_NAMESPACE} {OLDEST_MESSAGE_METRIC} {usage_queue}"
            ),
            usage_queue_visible=depth.visible,
            usage_queue_in_flight=depth.in_flight,
            aggregator_iterator_age=_figure(
                None if iterator_ms is None else iterator_ms / 1000,
                ITERATOR_AGE_THRESHOLD_SECONDS,
                f"{LAMBDA_NAMESPACE} {ITERATOR_AGE_METRIC} {settings.aggregator_function_name}",
            ),
            meter_reporter_lag=_figure(lag, METER_LAG_THRESHOLD_SECONDS, "the meter reporter's last run"),
            meter_reporter_last_run=MeterRunOut(
                started_at=run.started_at.isoformat() if run else None,
                events_sent=run.events_sent if run else None,
                events_failed=run.events_failed if run else None,
            ),
            usage_dlq_depth=_figure(
                usage_dlq.visible + usage_dlq.in_flight,
                DLQ_DEPTH_THRESHOLD,
                f"SQS {queue_name(settings.usage_dlq_url)}",
            ),
            webhook_dlq_depth=_figure(
                webhook_dlq.visible + webhook_dlq.in_flight,
                DLQ_DEPTH_THRESHOLD,
                f"SQS {queue_name(settings.webhook_dlq_url)}",
            ),
            tenant=self._tenant(tenant_id) if tenant_id else None,
        )

    def _tenant(self, tenant_id: str) -> TenantFreshnessOut:
        metered = sorted(
            {r for plan in self._settings.catalog.plans.values() for r, q in plan.quotas.items() if q.metered}
        )
        marks = [self._repository.meter_mark(tenant_id, resource) for resource in metered]
        return TenantFreshnessOut(
            tenant_id=tenant_id,
            meters=[
                TenantMeterOut(
                    resource_type=m.resource_type, last_reported_hour=m.last_reported_hour, reported=m.reported
                )
                for m in marks
            ],
        )
