"""Typed settings, read from the environment once per cold start and passed in from there."""

from __future__ import annotations

import os
from datetime import timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from billing_platform import resources

if TYPE_CHECKING:
    from billing_platform.catalog import Catalog


class Settings(BaseModel):
    """Everything the layer reads from the environment. Secrets are referenced by Secrets Manager ARN
    when deployed; the plain `stripe_*` values exist for local runs and tests only."""

    model_config = ConfigDict(frozen=True)

    environment: str = "development"
    # "stripe" or "mock"; unset: Stripe in production, the mock elsewhere. The local stack sets "stripe"
    # when the developer gives it a Stripe test-mode key.
    billing_provider: Literal["stripe", "mock"] | None = None
    service_name: str = "billing"
    billing_table_name: str = resources.BILLING_TABLE.local_name
    usage_table_name: str = resources.USAGE_TABLE.local_name
    aggregates_table_name: str = resources.AGGREGATES_TABLE.local_name
    usage_queue_url: str | None = None
    usage_dlq_url: str | None = None

    stripe_api_key_secret_arn: str | None = None
    stripe_webhook_secret_arn: str | None = None
    stripe_secret_key: str | None = Field(default=None, repr=False)
    stripe_webhook_secret: str | None = Field(default=None, repr=False)
    # Points the real stripe SDK at a local Stripe-compatible server (local stack, tests).
    stripe_api_base: str | None = None

    entitlement_check_enabled: bool = True
    usage_tracker_batch_size: int = Field(default=100, ge=1, le=10_000)
    usage_tracker_flush_interval: float = Field(default=30.0, gt=0)
    usage_record_ttl_days: int = Field(default=35, ge=1)
    # How the aggregator sends its (independent, watermark-conditioned) day-item updates: one UpdateItem
    # each (in parallel; the cheapest: 1 WRU per KB of the item) or up to 100 per TransactWriteItems
    # (twice the units, fewer requests). Exactness is the same; bench_usage prices either.
    usage_aggregate_writes: Literal["transact", "single"] = "single"
    plan_catalog_path: str | None = None
    # Local stack only: API Gateway's IAM authorization stands in for it when deployed.
    operator_token: str | None = Field(default=None, repr=False)
    # API Gateway usage plan tenants' usage-plan keys join (per-tenant throttling); None: not managed.
    usage_plan_id: str | None = None
    # The EventBridge bus billing events go to (resources.EVENT_BUS); the webhook delivery queue.
    event_bus_name: str = resources.EVENT_BUS.local_name
    webhook_queue_url: str | None = None
    webhook_dlq_url: str | None = None
    # The deployed name of the usage aggregator: the `FunctionName` of its Lambda IteratorAge metric.
    aggregator_function_name: str = "usage_aggregator"

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def usage_record_max_age(self) -> timedelta:
        """The oldest a usage record may be to be accepted (tracker, ingest and consumer alike): an hour
        inside its raw item's TTL, as a record older than that could be written again after its item
        expired and count twice."""
        return timedelta(days=self.usage_record_ttl_days) - timedelta(hours=1)

    @property
    def catalog(self) -> Catalog:
        """The plan catalog at `plan_catalog_path` (the packaged one when unset), read on first use and
        cached per path for the life of the container."""
        # Imported here: a handler that never reads the catalog does not load its models at cold start.
        from billing_platform.catalog import load_catalog

        return load_catalog(self.plan_catalog_path)

    @property
    def uses_stripe(self) -> bool:
        """Whether billing calls go to Stripe (the real SDK) rather than the in-memory mock."""
        if self.billing_provider is not None:
            return self.billing_provider == "stripe"
        return self.is_production

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        pairs = {
            "environment": "ENVIRONMENT",
            "billing_provider": "BILLING_PROVIDER",
            "service_name": "POWERTOOLS_SERVICE_NAME",
            "billing_table_name": resources.BILLING_TABLE.env_var,
            "usage_table_name": resources.USAGE_TABLE.env_var,
            "aggregates_table_name": resources.AGGREGATES_TABLE.env_var,
            "usage_queue_url": resources.USAGE_QUEUE.env_var,
            "usage_dlq_url": resources.USAGE_QUEUE.dlq_env_var,
            "stripe_api_key_secret_arn": resources.STRIPE_API_KEY_SECRET_ENV,
            "stripe_webhook_secret_arn": resources.STRIPE_WEBHOOK_SECRET_ENV,
            "stripe_secret_key": "STRIPE_SECRET_KEY",
            "stripe_webhook_secret": "STRIPE_WEBHOOK_SECRET",
            "stripe_api_base": "STRIPE_API_BASE",
            "entitlement_check_enabled": "ENTITLEMENT_CHECK_ENABLED",
            "usage_tracker_batch_size": "USAGE_TRACKER_BATCH_SIZE",
            "usage_tracker_flush_interval": "USAGE_TRACKER_FLUSH_INTERVAL",
            "usage_record_ttl_days": "USAGE_RECORD_TTL_DAYS",
            "usage_aggregate_writes": "USAGE_AGGREGATE_WRITES",
            "plan_catalog_path": "PLAN_CATALOG_PATH",
            "operator_token": "OPERATOR_TOKEN",
            "usage_plan_id": resources.USAGE_PLAN_ID_ENV,
            "event_bus_name": resources.EVENT_BUS.env_var,
            "webhook_queue_url": resources.WEBHOOK_QUEUE.env_var,
            "webhook_dlq_url": resources.WEBHOOK_QUEUE.dlq_env_var,
            "aggregator_function_name": resources.AGGREGATOR_FUNCTION_NAME_ENV,
        }
        values = {field: env[var] for field, var in pairs.items() if env.get(var) not in (None, "")}
        return cls.model_validate(values)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings. Tests that change the environment call `get_settings.cache_clear()`."""
    return Settings.from_env()
