"""The one definition of tables, queues, functions, routes and event sources.

The CDK stack (infra/) and the local stack (local_stack/) are both built from these values, so a key,
a batch size or a route cannot drift between what is deployed and what is tested locally.
Pure data: importing this module does no I/O.
"""

from __future__ import annotations

from typing import Literal

# The spec types, re-exported (`resources.FunctionSpec` and the like): `X as X` marks them public.
from billing_platform.specs import Auth as Auth
from billing_platform.specs import DependencyLayer as DependencyLayer
from billing_platform.specs import EventBusSpec as EventBusSpec
from billing_platform.specs import EventRuleSpec as EventRuleSpec
from billing_platform.specs import FunctionSpec as FunctionSpec
from billing_platform.specs import IndexSpec as IndexSpec
from billing_platform.specs import KeySpec as KeySpec
from billing_platform.specs import QueueSpec as QueueSpec
from billing_platform.specs import RouteSpec as RouteSpec
from billing_platform.specs import SqsSourceSpec as SqsSourceSpec
from billing_platform.specs import StreamSourceSpec as StreamSourceSpec
from billing_platform.specs import TableSpec as TableSpec

PK = KeySpec("pk")
SK = KeySpec("sk")

# Single-table design for everything keyed by tenant: profile, customer mapping, subscription,
# quota counters, webhook event ledger, idempotency records, API keys, audit entries.
# gsi1 is a generic secondary access path (for example all API keys of a tenant).
# Its stream (NEW_AND_OLD_IMAGES) feeds the quota / grant events: crossings are read from the counters'
# own writes, so the consume hot path stays one request.
BILLING_TABLE = TableSpec(
    logical_id="BillingTable",
    env_var="BILLING_TABLE_NAME",
    local_name="billing",
    partition_key=PK,
    sort_key=SK,
    stream=True,
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


# Tenant webhook deliveries: the event bus's rule puts each event here; webhook_delivery signs and POSTs it
# to the tenant's endpoints. A failed endpoint makes the message come back later (backoff by receive count,
# billing_platform.tenant_webhooks.delivery); after max_receive_count receives it goes to the DLQ.
WEBHOOK_QUEUE = QueueSpec(
    logical_id="WebhookQueue",
    env_var="WEBHOOK_QUEUE_URL",
    local_name="webhook-deliveries",
    # Six times the delivery function's timeout; the function lengthens it per message for the backoff.
    visibility_timeout_seconds=180,
    retention_days=4,
    dlq_local_name="webhook-deliveries-dlq",
    dlq_env_var="WEBHOOK_DLQ_URL",
    max_receive_count=12,
)

QUEUES: tuple[QueueSpec, ...] = (USAGE_QUEUE, WEBHOOK_QUEUE)


# Detail-types of the events tenants subscribe to (schemas: billing_platform.events.models).
QUOTA_THRESHOLD_CROSSED = "billing.quota.threshold_crossed"
GRANT_DEPLETED = "billing.grant.depleted"
GRANT_EXPIRED = "billing.grant.expired"
SPEND_THRESHOLD_CROSSED = "billing.spend.threshold_crossed"
EVENT_TYPES: tuple[str, ...] = (QUOTA_THRESHOLD_CROSSED, GRANT_DEPLETED, GRANT_EXPIRED, SPEND_THRESHOLD_CROSSED)

EVENT_BUS = EventBusSpec(
    logical_id="BillingEventBus",
    env_var="EVENT_BUS_NAME",
    local_name="billing-events",
    source="billing.platform",
    rules=(EventRuleSpec("WebhookDeliveryRule", "billing-webhook-delivery", EVENT_TYPES, WEBHOOK_QUEUE),),
)


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
    description="Atomic quota check / consume / release, entitlements, cost and invoice preview, operator grants",
    local_concurrency=4,
    routes=(
        RouteSpec("POST", "/v1/entitlements/check", T),
        RouteSpec("POST", "/v1/entitlements/consume", T),
        RouteSpec("POST", "/v1/entitlements/release", T),
        RouteSpec("GET", "/v1/tenants/{tenant_id}/entitlements", T),
        RouteSpec("GET", "/v1/tenants/{tenant_id}/events", T),
        RouteSpec("GET", "/v1/tenants/{tenant_id}/cost", T),
        RouteSpec("GET", "/v1/tenants/{tenant_id}/invoice-preview", T),
        # A cap is set by the operator or by the tenant's admin-scoped key; any of its keys may read it.
        RouteSpec("PUT", "/v1/tenants/{tenant_id}/spend-cap", T, "admin"),
        RouteSpec("GET", "/v1/tenants/{tenant_id}/spend-cap", T),
        RouteSpec("DELETE", "/v1/tenants/{tenant_id}/spend-cap", T, "admin"),
        RouteSpec("POST", "/v1/tenants/{tenant_id}/grants", OP),
        RouteSpec("GET", "/v1/tenants/{tenant_id}/grants", OP),
        RouteSpec("DELETE", "/v1/tenants/{tenant_id}/grants/{grant_id}", OP),
    ),
    reads=(AGGREGATES_TABLE,),  # the cost's usage per priced dimension value and per entity
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
        RouteSpec("GET", "/v1/tenants/{tenant_id}/reservations", T),
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
    local_concurrency=4,
    routes=(RouteSpec("POST", "/v1/usage", T),),
    sends_to=(USAGE_QUEUE,),
    # The values registry behind the catalog's cardinality caps on dimension values and entities.
    writes=(AGGREGATES_TABLE,),
)

USAGE_QUERY = FunctionSpec(
    name="usage_query",
    description="Usage per tenant (by hour, day, month, dimension, entity) and top tenants",
    routes=(
        RouteSpec("GET", "/v1/tenants/{tenant_id}/usage", T),
        RouteSpec("GET", "/v1/tenants/{tenant_id}/usage/series", T),
        RouteSpec("GET", "/v1/usage/top", OP),
        RouteSpec("GET", "/v1/usage/top-tenants", OP),
    ),
    reads=(AGGREGATES_TABLE,),
)

USAGE_CONSUMER = FunctionSpec(
    name="usage_consumer",
    description="Writes batches of usage records from SQS into the usage table",
    local_concurrency=1,
    timeout_seconds=30,
    sqs_source=SqsSourceSpec(USAGE_QUEUE, batch_size=100, max_batching_window_seconds=5),
    writes=(USAGE_TABLE,),
)

USAGE_AGGREGATOR = FunctionSpec(
    name="usage_aggregator",
    description="Folds newly inserted usage records into the usage read model's day items, exactly once",
    local_concurrency=1,
    timeout_seconds=180,  # a full batch of 8,000 records writes up to a few thousand day items
    # A batch writes each day item it touches once: larger batches coalesce more (8,000 records of at most
    # ~700 bytes each stay inside Lambda's 6 MB event). bench_usage prints the worst invocation time
    # against the timeout.
    stream_source=StreamSourceSpec(USAGE_TABLE, batch_size=8000, max_batching_window_seconds=5),
    writes=(AGGREGATES_TABLE,),
)

METER_REPORTER = FunctionSpec(
    name="meter_reporter",
    description="Reports metered usage to Stripe billing meters, exactly once per unit",
    local_concurrency=1,
    timeout_seconds=300,
    dependency_layers=(DependencyLayer.CORE, DependencyLayer.STRIPE),
    schedule_minutes=15,
    reads=(AGGREGATES_TABLE,),
    writes=(BILLING_TABLE,),
    needs_stripe_secrets=True,
)

_PORTAL_TOKEN_ROUTES: tuple[tuple[Literal["POST", "GET", "DELETE"], str], ...] = (
    ("POST", ""),
    ("GET", ""),
    ("DELETE", "/{token_id}"),
)
API_KEYS = FunctionSpec(
    name="api_keys",
    description="Operator API for tenant API keys, portal tokens and the audit log",
    routes=(
        *(RouteSpec(m, f"/v1/tenants/{{tenant_id}}/portal-tokens{p}", OP) for m, p in _PORTAL_TOKEN_ROUTES),
        *(RouteSpec(m, f"/v1/portal-tokens{p}", T, "admin") for m, p in _PORTAL_TOKEN_ROUTES),  # its own tenant
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
    local_concurrency=4,
    memory_mb=256,
    timeout_seconds=5,
    writes=(BILLING_TABLE,),
)

# Threshold crossings and grant depletions, read from the billing table's stream (counter and grant items
# only), published once each to the event bus.
QUOTA_EVENTS = FunctionSpec(
    name="quota_events",
    description="Publishes quota threshold crossings and grant depletions from the billing table stream, once each",
    timeout_seconds=60,
    stream_source=StreamSourceSpec(
        BILLING_TABLE, batch_size=500, max_batching_window_seconds=1, key_prefixes=("QUOTA#", "GRANTS#")
    ),
    writes=(BILLING_TABLE,),
    publishes_to=(EVENT_BUS,),
)

# Grants that expired with a balance (nothing is written at expiry), and events whose first publish did
# not finish (a crash between the marker and PutEvents).
EVENT_SWEEPER = FunctionSpec(
    name="event_sweeper",
    description="Publishes grant expiries and re-publishes events left pending by a failed first attempt",
    timeout_seconds=120,
    schedule_minutes=5,
    writes=(BILLING_TABLE,),
    publishes_to=(EVENT_BUS,),
)

WEBHOOK_ENDPOINTS = FunctionSpec(
    name="webhook_endpoints",
    description="Tenants' webhook endpoints, by operators and admin keys (signing secret shown once)",
    routes=(
        RouteSpec("POST", "/v1/tenants/{tenant_id}/webhook-endpoints", OP),
        RouteSpec("GET", "/v1/tenants/{tenant_id}/webhook-endpoints", OP),
        RouteSpec("DELETE", "/v1/tenants/{tenant_id}/webhook-endpoints/{endpoint_id}", OP),
        # The same for a tenant's admin-scoped key, on its own tenant.
        RouteSpec("POST", "/v1/webhook-endpoints", T, "admin"),
        RouteSpec("GET", "/v1/webhook-endpoints", T, "admin"),
        RouteSpec("DELETE", "/v1/webhook-endpoints/{endpoint_id}", T, "admin"),
    ),
    writes=(BILLING_TABLE,),
)

# A tenant's entities and their limits: by operators under /v1/tenants/{tenant_id}, and by the tenant's own
# admin-scoped key without the tenant in the path (it acts for its own tenant only).
_ENTITY_ROUTES: tuple[tuple[Literal["GET", "POST", "PATCH", "DELETE", "PUT"], str], ...] = (
    ("POST", "/entities"),
    ("GET", "/entities"),
    ("GET", "/entities/{entity_id}"),
    ("PATCH", "/entities/{entity_id}"),
    ("DELETE", "/entities/{entity_id}"),
    ("GET", "/entities/{entity_id}/limits"),
    ("PUT", "/entities/{entity_id}/limits/{resource_type}"),
    ("DELETE", "/entities/{entity_id}/limits/{resource_type}"),
    ("PUT", "/api-keys/{key_id}/entity"),
)
ENTITIES = FunctionSpec(
    name="entities",
    description="A tenant's entities, their limits and key bindings (operators and admin keys), audited",
    routes=tuple(RouteSpec(method, f"/v1/tenants/{{tenant_id}}{path}", OP) for method, path in _ENTITY_ROUTES)
    + tuple(RouteSpec(method, f"/v1{path}", T, "admin") for method, path in _ENTITY_ROUTES),
    writes=(BILLING_TABLE,),
)

WEBHOOK_DELIVERY = FunctionSpec(
    name="webhook_delivery",
    description="Signs and delivers bus events to tenants' webhook endpoints, retried with backoff",
    timeout_seconds=30,
    # One event per invocation: its endpoints' POSTs (DELIVERY_BUDGET_SECONDS at most) fit the timeout.
    sqs_source=SqsSourceSpec(WEBHOOK_QUEUE, batch_size=1, max_batching_window_seconds=0, sets_visibility=True),
    writes=(BILLING_TABLE,),
)

# The pages (portal, console, widget) bundled into functions/portal/static by `make setup`, served from the
# API's origin (their CSP says 'self'). Public: they hold no data; every number comes from the API with a token.
PORTAL = FunctionSpec(
    name="portal",
    description="Serves the tenant portal, the operator console and the usage widget (static assets)",
    memory_mb=256,
    timeout_seconds=5,
    routes=tuple(RouteSpec("GET", path, P) for path in ("/portal", "/console", "/portal/assets/{asset}")),
)
# The console's reads: pipeline freshness (billing_platform.freshness) and the tenant directory.
OPERATIONS = FunctionSpec(
    name="operations",
    description="Operator reads: usage pipeline freshness and the tenant directory with plans",
    timeout_seconds=15,
    routes=(RouteSpec("GET", "/v1/ops/freshness", OP), RouteSpec("GET", "/v1/tenants", OP)),
    reads=(BILLING_TABLE,),
    observes=(USAGE_QUEUE, WEBHOOK_QUEUE),
    reads_metrics=True,
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
    QUOTA_EVENTS,
    EVENT_SWEEPER,
    WEBHOOK_ENDPOINTS,
    WEBHOOK_DELIVERY,
    ENTITIES,
    PORTAL,
    OPERATIONS,
)

# Secrets Manager holds the Stripe keys; functions get the secret ARNs, never the values.
STRIPE_API_KEY_SECRET_ENV = "STRIPE_API_KEY_SECRET_ARN"
STRIPE_WEBHOOK_SECRET_ENV = "STRIPE_WEBHOOK_SECRET_ARN"

# CloudWatch namespace of every function's Powertools metrics (POWERTOOLS_METRICS_NAMESPACE) and of the dashboard.
METRICS_NAMESPACE = "Billing"

# The usage aggregator's deployed name (its IteratorAge metric's dimension), for freshness.
AGGREGATOR_FUNCTION_NAME_ENV = "AGGREGATOR_FUNCTION_NAME"
TRACE_DISABLED_ENV = "POWERTOOLS_TRACE_DISABLED"
# Environment every deployed function gets (infra/constructs/functions.py adds tables, queues and secrets).
FUNCTION_ENVIRONMENT: dict[str, str] = {
    "POWERTOOLS_SERVICE_NAME": "billing",
    "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
    "POWERTOOLS_LOG_LEVEL": "INFO",
    # Responses can carry tenant data; traces keep timings, not payloads.
    "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
    # Lambda's active tracing (on for every function) records each invocation and its init without any
    # code; the X-Ray SDK adds a subsegment per AWS call and a large share of every cold start, so it is opt-in
    # (CDK context xraySdk=true drops this variable; billing_platform.observability builds the Tracer then).
    TRACE_DISABLED_ENV: "true",
    # No function uses a pydantic plugin; without this the first model built scans every installed
    # distribution's entry points for one (a few ms per cold start, more with more packages).
    "PYDANTIC_DISABLE_PLUGINS": "__all__",
}

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


# All an entity-scoped portal token may read: its own entity and that entity's limits, and the usage series,
# which answers that entity's usage only (the authorizer writes the token's tenant and entity into each path).
ENTITY_PORTAL_READS: tuple[tuple[str, str], ...] = (
    ("GET", "/v1/entities/{entity_id}"),
    ("GET", "/v1/entities/{entity_id}/limits"),
    ("GET", "/v1/tenants/{tenant_id}/usage/series"),
)


def portal_routes(*, entity: bool) -> list[RouteSpec]:
    """The routes a portal token may call: a tenant's token every `use`-scope GET route that names a tenant;
    an entity's token ENTITY_PORTAL_READS. These routes also answer CORS preflights (the widget is embedded
    on other origins)."""
    if entity:
        return [route for route, _fn in routes() if (route.method, route.path) in ENTITY_PORTAL_READS]
    return [
        route
        for route, _fn in routes()
        if route.auth is Auth.TENANT and route.method == "GET" and route.scope == "use" and "{tenant_id}" in route.path
    ]
