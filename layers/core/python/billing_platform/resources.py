"""The one definition of tables, queues, functions, routes and event sources.

The CDK stack (infra/) and the local stack (local_stack/) are both built from these values, so a key,
a batch size or a route cannot drift between what is deployed and what is tested locally.
Pure data: importing this module does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

KeyType = Literal["S", "N"]


@dataclass(frozen=True)
class KeySpec:
    name: str
    type: KeyType = "S"


@dataclass(frozen=True)
class IndexSpec:
    name: str
    partition_key: KeySpec
    sort_key: KeySpec | None = None
    # KEYS_ONLY: an update that changes no key attribute writes nothing to the index (no extra WRU).
    projection: Literal["ALL", "KEYS_ONLY"] = "ALL"


@dataclass(frozen=True)
class TableSpec:
    """A DynamoDB table. `env_var` is how functions learn its name."""

    logical_id: str
    env_var: str
    local_name: str
    partition_key: KeySpec
    sort_key: KeySpec | None
    ttl_attribute: str | None = "expires_at"
    stream: bool = False
    indexes: tuple[IndexSpec, ...] = ()


PK = KeySpec("pk")
SK = KeySpec("sk")

# Single-table design for everything keyed by tenant: profile, customer mapping, subscription,
# quota counters, webhook event ledger, idempotency records, API keys, audit entries.
# gsi1 is a generic secondary access path (for example all API keys of a tenant).
BILLING_TABLE = TableSpec(
    logical_id="BillingTable",
    env_var="BILLING_TABLE_NAME",
    local_name="billing",
    partition_key=PK,
    sort_key=SK,
    indexes=(IndexSpec("gsi1", KeySpec("gsi1pk"), KeySpec("gsi1sk")),),
)

# Raw usage records, one item per record, keyed from the record alone so a redelivered message
# rewrites the same item (and DynamoDB emits no stream record for an unchanged rewrite).
USAGE_TABLE = TableSpec(
    logical_id="UsageTable",
    env_var="USAGE_TABLE_NAME",
    local_name="usage",
    partition_key=PK,
    sort_key=SK,
    stream=True,
)

# Hour / day / month totals per tenant x resource, each carrying its own exactly-once watermarks.
# `top` lists the tenants of one (resource, bucket): its keys never change after a row is created and
# it projects keys only, so adding to a total costs no index write (ALL with the total as sort key cost
# 2 more WRU per update: delete + put in the index). Top-consumer reads fetch the totals from the rows.
AGGREGATES_TABLE = TableSpec(
    logical_id="AggregatesTable",
    env_var="AGGREGATES_TABLE_NAME",
    local_name="usage-aggregates",
    partition_key=PK,
    sort_key=SK,
    indexes=(IndexSpec("top", KeySpec("top_pk"), KeySpec("top_sk"), projection="KEYS_ONLY"),),
)

TABLES: tuple[TableSpec, ...] = (BILLING_TABLE, USAGE_TABLE, AGGREGATES_TABLE)


@dataclass(frozen=True)
class QueueSpec:
    logical_id: str
    env_var: str
    local_name: str
    visibility_timeout_seconds: int
    retention_days: int
    dlq_local_name: str
    dlq_env_var: str
    dlq_retention_days: int = 14
    max_receive_count: int = 5


USAGE_QUEUE = QueueSpec(
    logical_id="UsageQueue",
    env_var="USAGE_QUEUE_URL",
    local_name="usage-records",
    # Six times the consumer's timeout, as AWS recommends for SQS event sources.
    visibility_timeout_seconds=180,
    retention_days=4,
    dlq_local_name="usage-records-dlq",
    dlq_env_var="USAGE_DLQ_URL",
)


@dataclass(frozen=True)
class SqsSourceSpec:
    queue: QueueSpec
    batch_size: int
    max_batching_window_seconds: int
    report_batch_item_failures: bool = True


@dataclass(frozen=True)
class StreamSourceSpec:
    table: TableSpec
    batch_size: int
    max_batching_window_seconds: int
    starting_position: Literal["TRIM_HORIZON", "LATEST"] = "TRIM_HORIZON"
    retry_attempts: int = 10
    bisect_batch_on_error: bool = True
    report_batch_item_failures: bool = True
    # 1 keeps a shard's records in order in one invocation at a time: the aggregator's per-row
    # watermarks (per usage partition key) rely on it.
    parallelization_factor: int = 1
    max_record_age_seconds: int = 86_400


class Auth(StrEnum):
    """Who may call a route: an operator (IAM / operator token), a tenant API key, or anyone."""

    OPERATOR = "operator"
    TENANT = "tenant"
    PUBLIC = "public"


@dataclass(frozen=True)
class RouteSpec:
    method: Literal["GET", "POST", "PATCH", "DELETE", "PUT"]
    path: str
    auth: Auth


class DependencyLayer(StrEnum):
    """Third-party packages reach Lambda in these layers; stripe only where Stripe is called."""

    CORE = "core"  # powertools, pydantic (boto3 comes with the runtime, but pinned here too)
    STRIPE = "stripe"


@dataclass(frozen=True)
class FunctionSpec:
    name: str  # folder under functions/, and the local stack's name for it
    description: str
    memory_mb: int = 512
    timeout_seconds: int = 10
    dependency_layers: tuple[DependencyLayer, ...] = (DependencyLayer.CORE,)
    routes: tuple[RouteSpec, ...] = ()
    sqs_source: SqsSourceSpec | None = None
    stream_source: StreamSourceSpec | None = None
    schedule_minutes: int | None = None
    reads: tuple[TableSpec, ...] = ()
    writes: tuple[TableSpec, ...] = ()
    sends_to: tuple[QueueSpec, ...] = ()
    needs_stripe_secrets: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)


OP, T, P = Auth.OPERATOR, Auth.TENANT, Auth.PUBLIC

SUBSCRIPTIONS = FunctionSpec(
    name="subscriptions",
    description="Customers and subscriptions (operator API) through the billing provider",
    timeout_seconds=29,
    dependency_layers=(DependencyLayer.CORE, DependencyLayer.STRIPE),
    routes=(
        RouteSpec("POST", "/v1/customers", OP),
        RouteSpec("GET", "/v1/customers/{customer_id}", OP),
        RouteSpec("POST", "/v1/subscriptions", OP),
        RouteSpec("GET", "/v1/subscriptions/{subscription_id}", OP),
        RouteSpec("PATCH", "/v1/subscriptions/{subscription_id}", OP),
        RouteSpec("DELETE", "/v1/subscriptions/{subscription_id}", OP),
    ),
    writes=(BILLING_TABLE,),
    needs_stripe_secrets=True,
)

STRIPE_WEBHOOK = FunctionSpec(
    name="stripe_webhook",
    description="Verified, idempotent Stripe webhook target keeping subscriptions and quotas in sync",
    timeout_seconds=29,
    dependency_layers=(DependencyLayer.CORE, DependencyLayer.STRIPE),
    routes=(RouteSpec("POST", "/v1/webhooks/stripe", P),),
    writes=(BILLING_TABLE,),
    needs_stripe_secrets=True,
)

ENTITLEMENTS = FunctionSpec(
    name="entitlements",
    description="Atomic quota check / consume / release and entitlement listing",
    routes=(
        RouteSpec("POST", "/v1/entitlements/check", T),
        RouteSpec("POST", "/v1/entitlements/consume", T),
        RouteSpec("POST", "/v1/entitlements/release", T),
        RouteSpec("GET", "/v1/tenants/{tenant_id}/entitlements", T),
    ),
    writes=(BILLING_TABLE,),
)

# Reservations share the billing table's quota counters with entitlements; a settle meters its charged
# amount through the usage queue.
RESERVATIONS = FunctionSpec(
    name="reservations",
    description="Reserve quota for work priced afterwards; settle, cancel and read reservations",
    routes=(
        RouteSpec("POST", "/v1/entitlements/reservations", T),
        RouteSpec("POST", "/v1/entitlements/reservations/{reservation_id}/settle", T),
        RouteSpec("DELETE", "/v1/entitlements/reservations/{reservation_id}", T),
        RouteSpec("GET", "/v1/entitlements/reservations/{reservation_id}", T),
    ),
    writes=(BILLING_TABLE,),
    sends_to=(USAGE_QUEUE,),
)

# Every minute: a reservation past its expiry is given back within about a minute (DynamoDB TTL alone can
# lag 48 hours, and is used only to delete resolved reservations later).
RESERVATION_SWEEPER = FunctionSpec(
    name="reservation_sweeper",
    description="Gives back expired reservations and resends usage a crashed settle left unsent",
    timeout_seconds=60,
    schedule_minutes=1,
    writes=(BILLING_TABLE,),
    sends_to=(USAGE_QUEUE,),
)

USAGE_INGEST = FunctionSpec(
    name="usage_ingest",
    description="HTTP batch ingest of usage records onto the usage queue",
    routes=(RouteSpec("POST", "/v1/usage", T),),
    sends_to=(USAGE_QUEUE,),
)

USAGE_QUERY = FunctionSpec(
    name="usage_query",
    description="Usage trends per tenant and top consumers",
    routes=(
        RouteSpec("GET", "/v1/tenants/{tenant_id}/usage", T),
        RouteSpec("GET", "/v1/usage/top", OP),
    ),
    reads=(AGGREGATES_TABLE,),
)

USAGE_CONSUMER = FunctionSpec(
    name="usage_consumer",
    description="Writes batches of usage records from SQS into the usage table",
    timeout_seconds=30,
    sqs_source=SqsSourceSpec(USAGE_QUEUE, batch_size=100, max_batching_window_seconds=5),
    writes=(USAGE_TABLE,),
)

USAGE_AGGREGATOR = FunctionSpec(
    name="usage_aggregator",
    description="Folds newly inserted usage records into hour / day / month aggregates, exactly once",
    timeout_seconds=60,
    # A batch writes each row it touches once: larger batches coalesce more (2,000 x ~500-byte records stay
    # well inside Lambda's 6 MB event). bench_usage prints the worst invocation time against the timeout.
    stream_source=StreamSourceSpec(USAGE_TABLE, batch_size=2000, max_batching_window_seconds=5),
    writes=(AGGREGATES_TABLE,),
)

METER_REPORTER = FunctionSpec(
    name="meter_reporter",
    description="Reports metered usage to Stripe billing meters, exactly once per unit",
    timeout_seconds=300,
    dependency_layers=(DependencyLayer.CORE, DependencyLayer.STRIPE),
    schedule_minutes=15,
    reads=(AGGREGATES_TABLE,),
    writes=(BILLING_TABLE,),
    needs_stripe_secrets=True,
)

API_KEYS = FunctionSpec(
    name="api_keys",
    description="Operator API to create, list and revoke tenant API keys, and read the audit log",
    routes=(
        RouteSpec("POST", "/v1/tenants/{tenant_id}/api-keys", OP),
        RouteSpec("GET", "/v1/tenants/{tenant_id}/api-keys", OP),
        RouteSpec("DELETE", "/v1/tenants/{tenant_id}/api-keys/{key_id}", OP),
        RouteSpec("GET", "/v1/tenants/{tenant_id}/audit", OP),
    ),
    writes=(BILLING_TABLE,),
)

# Lambda REQUEST authorizer for tenant routes: hashes the presented key and looks it up.
AUTHORIZER = FunctionSpec(
    name="authorizer",
    description="Lambda authorizer: tenant API key -> tenant id (keys stored only as hashes)",
    memory_mb=256,
    timeout_seconds=5,
    writes=(BILLING_TABLE,),
)

HEALTH = FunctionSpec(
    name="health",
    description="Liveness probe",
    memory_mb=256,
    timeout_seconds=5,
    routes=(RouteSpec("GET", "/health", P),),
)

FUNCTIONS: tuple[FunctionSpec, ...] = (
    HEALTH,
    SUBSCRIPTIONS,
    STRIPE_WEBHOOK,
    ENTITLEMENTS,
    RESERVATIONS,
    RESERVATION_SWEEPER,
    USAGE_INGEST,
    USAGE_QUERY,
    USAGE_CONSUMER,
    USAGE_AGGREGATOR,
    METER_REPORTER,
    API_KEYS,
    AUTHORIZER,
)

# Secrets Manager holds the Stripe keys; functions get the secret ARNs, never the values.
STRIPE_API_KEY_SECRET_ENV = "STRIPE_API_KEY_SECRET_ARN"
STRIPE_WEBHOOK_SECRET_ENV = "STRIPE_WEBHOOK_SECRET_ARN"

# CloudWatch namespace of every function's Powertools metrics (POWERTOOLS_METRICS_NAMESPACE) and of the dashboard.
METRICS_NAMESPACE = "Billing"

# API Gateway stage throttling (per account-region defaults are far higher; these protect the tables).
API_THROTTLE_RATE_LIMIT = 500
API_THROTTLE_BURST_LIMIT = 1000
# Each tenant's share through its API Gateway usage plan (one usage-plan key per tenant).
TENANT_THROTTLE_RATE_LIMIT = API_THROTTLE_RATE_LIMIT // 5
TENANT_THROTTLE_BURST_LIMIT = API_THROTTLE_BURST_LIMIT // 5
MAX_REQUEST_BODY_BYTES = 256 * 1024
# The api_keys function gets the tenant usage plan's id here, to attach each tenant's usage-plan key.
USAGE_PLAN_ID_ENV = "USAGE_PLAN_ID"
# API Gateway caches a tenant authorizer's answer this long per Authorization header: the longest a revoked
# key keeps working, traded against one DynamoDB read per call.
AUTHORIZER_CACHE_TTL_SECONDS = 60
# The API's WAF web ACL blocks a source IP above this many requests per 5 minutes (the Stripe webhook is exempt):
# a flood backstop in front of the authorizer, which runs before any per-tenant usage-plan throttling. Set to a
# tenant's full usage-plan rate over the window, so a tenant backend calling the hot path from one NAT address
# is throttled by its plan (429 with Retry-After), never by the WAF first.
WAF_RATE_LIMIT_PER_IP = TENANT_THROTTLE_RATE_LIMIT * 300


def routes() -> list[tuple[RouteSpec, FunctionSpec]]:
    """Every route with the function that serves it, in declaration order."""
    return [(route, fn) for fn in FUNCTIONS for route in fn.routes]
