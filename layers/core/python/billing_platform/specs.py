"""The shapes of the platform's resources: tables, queues, event buses, event sources, routes and functions.
Pure data types; `billing_platform.resources` holds the one definition of each resource built from them
(and re-exports these types, so `resources.FunctionSpec` and the like keep working)."""

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


@dataclass(frozen=True)
class EventRuleSpec:
    """Events of these detail-types on the bus go to `queue` (an EventBridge rule with an SQS target)."""

    logical_id: str
    local_name: str
    detail_types: tuple[str, ...]
    queue: QueueSpec


@dataclass(frozen=True)
class EventBusSpec:
    """A custom EventBridge bus. Functions that publish get its name in `env_var`; every event carries
    `source`."""

    logical_id: str
    env_var: str
    local_name: str
    source: str
    rules: tuple[EventRuleSpec, ...] = ()
    archive_retention_days: int = 30


@dataclass(frozen=True)
class SqsSourceSpec:
    queue: QueueSpec
    batch_size: int
    max_batching_window_seconds: int
    report_batch_item_failures: bool = True
    # The consumer postpones failed messages itself (ChangeMessageVisibility, a backoff): it gets the
    # queue's URL in `queue.env_var`.
    sets_visibility: bool = False


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
    # Only records whose partition key starts with one of these reach the function (a Lambda event filter
    # deployed, the same test in the local poller); empty: every record.
    key_prefixes: tuple[str, ...] = ()


class Auth(StrEnum):
    """Who may call a route: an operator (IAM / operator token), a tenant API key, or anyone."""

    OPERATOR = "operator"
    TENANT = "tenant"
    PUBLIC = "public"


@dataclass(frozen=True)
class RouteSpec:
    """`scope`: on a tenant route, the API key scope it needs (`admin`: the tenant's own entities, limits,
    key bindings and webhook endpoints); the authorizer allows a key only the routes of its scope."""

    method: Literal["GET", "POST", "PATCH", "DELETE", "PUT"]
    path: str
    auth: Auth
    scope: Literal["use", "admin"] = "use"


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
    publishes_to: tuple[EventBusSpec, ...] = ()
    needs_stripe_secrets: bool = False
    observes: tuple[QueueSpec, ...] = ()  # queues (and DLQs) whose depth it reads, given their URLs
    reads_metrics: bool = False  # CloudWatch GetMetricStatistics (no resource-level permission exists)
    extra_env: dict[str, str] = field(default_factory=dict)
    # The local stack runs at most this many containers (worker processes) of the function at once: Lambda's
    # per-function concurrency on one machine (`make dev CONCURRENCY=n` sets every function's). 2 cores
    # gain nothing from more; the hot path's functions get 4 so a slow DynamoDB call does not idle the CPU.
    local_concurrency: int = 2
