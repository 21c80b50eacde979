"""The billing provider interface and the Stripe-shaped objects it returns.

Two faces of one provider:

* `BillingProvider` (async): what asyncio services call, ``await provider.create_customer(...)``.
* `SyncBillingProvider` (blocking): what Lambda code calls through ``provider.sync``, with no event loop.

Concrete providers implement the blocking face once; `OffloadedProvider` derives the async face from
it by running each call on the library's worker pool (`billing_platform.offload`), so the event loop
never blocks on network I/O and there is exactly one implementation of every Stripe call to test. This
is the convention of all four library objects (see `billing_platform.enforcer`).

One answer differs between the faces, as the design document has it: the async `create_customer`
returns the new customer's id (``customer_id = await provider.create_customer(...)``); the blocking one
returns the whole `ProviderCustomer` (the subscription service stores its email and name). Returned
objects read both ways: ``customer.email`` and ``customer["email"]``, ``subscription["id"]``.
Tenant ids may be strings or `uuid.UUID`s.

Objects are parsed from the same Stripe-shaped dictionaries the webhooks receive (`ProviderSubscription.
from_stripe`), so an API response and an event payload go through one parser. Current Stripe API
versions carry the billing period on the subscription items (``items.data[].current_period_start/end``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from billing_platform.ids import TenantIdLike, tenant_id_str
from billing_platform.offload import run_blocking

# Statuses in which the customer is entitled to the plan (past_due only within the plan's grace).
LIVE_STATUSES = frozenset({"active", "trialing", "past_due"})
ENDED_STATUSES = frozenset({"canceled", "incomplete_expired"})


def from_epoch(value: Any) -> datetime | None:
    """Stripe timestamps are integer seconds since the epoch, UTC."""
    if value is None:
        return None
    return datetime.fromtimestamp(int(value), tz=UTC)


def expandable_id(value: object) -> str | None:
    """The id in a Stripe expandable field: the id itself, or the expanded object carrying it; None if unset."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return str(value) if value else None


class StripeShaped(BaseModel):
    """A provider object read as attributes or, like the Stripe dictionaries it was parsed from, by key:
    ``customer["email"]``. Only the model's own fields are keys; an unknown key is a `KeyError`."""

    def __getitem__(self, key: str) -> Any:
        if key not in type(self).model_fields:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in type(self).model_fields else default


class ProviderCustomer(StripeShaped):
    """A billing customer. `tenant_id` comes from the customer's metadata."""

    model_config = ConfigDict(frozen=True)

    id: str
    email: str | None = None
    name: str | None = None
    tenant_id: str | None = None
    created: datetime | None = None
    deleted: bool = False

    @classmethod
    def from_stripe(cls, obj: Mapping[str, Any]) -> ProviderCustomer:
        metadata = obj.get("metadata") or {}
        return cls(
            id=str(obj["id"]),
            email=obj.get("email"),
            name=obj.get("name"),
            tenant_id=metadata.get("tenant_id"),
            created=from_epoch(obj.get("created")),
            deleted=bool(obj.get("deleted", False)),
        )


class ProviderSubscription(StripeShaped):
    """The part of a Stripe subscription the platform acts on."""

    model_config = ConfigDict(frozen=True)

    id: str
    customer_id: str
    status: str
    price_id: str | None
    created: datetime
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    cancel_at_period_end: bool = False
    cancel_at: datetime | None = None
    canceled_at: datetime | None = None
    ended_at: datetime | None = None
    trial_end: datetime | None = None
    tenant_id: str | None = None

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def has_ended(self) -> bool:
        return self.status in ENDED_STATUSES

    @classmethod
    def from_stripe(cls, obj: Mapping[str, Any]) -> ProviderSubscription:
        items = ((obj.get("items") or {}).get("data")) or []
        first: Mapping[str, Any] = items[0] if items else {}
        price = first.get("price") or {}
        # Current API versions: the period is per item. Older payloads had it on the subscription.
        period_start = first.get("current_period_start", obj.get("current_period_start"))
        period_end = first.get("current_period_end", obj.get("current_period_end"))
        created = from_epoch(obj.get("created"))
        if created is None:
            raise ValueError("a subscription object needs `created`")
        return cls(
            id=str(obj["id"]),
            customer_id=str(expandable_id(obj.get("customer"))),
            status=str(obj.get("status")),
            price_id=expandable_id(price),
            created=created,
            current_period_start=from_epoch(period_start),
            current_period_end=from_epoch(period_end),
            cancel_at_period_end=bool(obj.get("cancel_at_period_end", False)),
            cancel_at=from_epoch(obj.get("cancel_at")),
            canceled_at=from_epoch(obj.get("canceled_at")),
            ended_at=from_epoch(obj.get("ended_at")),
            trial_end=from_epoch(obj.get("trial_end")),
            tenant_id=(obj.get("metadata") or {}).get("tenant_id"),
        )


@runtime_checkable
class SyncBillingProvider(Protocol):
    """Blocking provider calls for Lambda code. Mutations take an optional idempotency key; a provider
    makes one up per call when none is given, and reuses it on every retry of that call."""

    def create_customer(
        self, tenant_id: TenantIdLike, email: str, name: str | None = None, *, idempotency_key: str | None = None
    ) -> str:
        """Create the customer (tenant id in its metadata); its id, as the async face answers."""
        ...

    def get_customer(self, customer_id: str) -> ProviderCustomer: ...

    def create_subscription(
        self, customer_id: str, price_id: str, trial_days: int | None = None, *, idempotency_key: str | None = None
    ) -> ProviderSubscription: ...

    def update_subscription(
        self, subscription_id: str, new_price_id: str, *, idempotency_key: str | None = None
    ) -> ProviderSubscription: ...

    def cancel_subscription(
        self, subscription_id: str, immediate: bool = False, *, idempotency_key: str | None = None
    ) -> ProviderSubscription: ...

    def get_subscription(self, subscription_id: str) -> ProviderSubscription: ...

    def list_line_items(
        self, object_type: Literal["checkout_session", "invoice"], object_id: str
    ) -> list[dict[str, Any]]:
        """Every line item of a checkout session or an invoice, as Stripe-shaped dicts (top-ups)."""
        ...


@runtime_checkable
class BillingProvider(Protocol):
    """The async provider interface (``await provider.create_customer(...)``); ``.sync`` is the blocking
    face of the same provider."""

    @property
    def sync(self) -> SyncBillingProvider: ...

    async def create_customer(
        self, tenant_id: TenantIdLike, email: str, name: str | None = None, *, idempotency_key: str | None = None
    ) -> str: ...

    async def get_customer(self, customer_id: str) -> ProviderCustomer: ...

    async def create_subscription(
        self, customer_id: str, price_id: str, trial_days: int | None = None, *, idempotency_key: str | None = None
    ) -> ProviderSubscription: ...

    async def update_subscription(
        self, subscription_id: str, new_price_id: str, *, idempotency_key: str | None = None
    ) -> ProviderSubscription: ...

    async def cancel_subscription(
        self, subscription_id: str, immediate: bool = False, *, idempotency_key: str | None = None
    ) -> ProviderSubscription: ...

    async def get_subscription(self, subscription_id: str) -> ProviderSubscription: ...

    async def list_line_items(
        self, object_type: Literal["checkout_session", "invoice"], object_id: str
    ) -> list[dict[str, Any]]: ...


class OffloadedProvider:
    """The async face of any blocking provider: each call runs on a worker thread."""

    def __init__(self, sync: SyncBillingProvider) -> None:
        self._sync = sync

    @property
    def sync(self) -> SyncBillingProvider:
        return self._sync

    async def create_customer(
        self, tenant_id: TenantIdLike, email: str, name: str | None = None, *, idempotency_key: str | None = None
    ) -> str:
        """Create the customer (tenant id in its metadata); its id, e.g. ``cus_...``."""
        return await run_blocking(
            self._sync.create_customer, tenant_id_str(tenant_id), email, name, idempotency_key=idempotency_key
        )

    async def get_customer(self, customer_id: str) -> ProviderCustomer:
        return await run_blocking(self._sync.get_customer, customer_id)

    async def create_subscription(
        self, customer_id: str, price_id: str, trial_days: int | None = None, *, idempotency_key: str | None = None
    ) -> ProviderSubscription:
        return await run_blocking(
            self._sync.create_subscription, customer_id, price_id, trial_days, idempotency_key=idempotency_key
        )

    async def update_subscription(
        self, subscription_id: str, new_price_id: str, *, idempotency_key: str | None = None
    ) -> ProviderSubscription:
        return await run_blocking(
            self._sync.update_subscription, subscription_id, new_price_id, idempotency_key=idempotency_key
        )

    async def cancel_subscription(
        self, subscription_id: str, immediate: bool = False, *, idempotency_key: str | None = None
    ) -> ProviderSubscription:
        return await run_blocking(
            self._sync.cancel_subscription, subscription_id, immediate, idempotency_key=idempotency_key
        )

    async def get_subscription(self, subscription_id: str) -> ProviderSubscription:
        return await run_blocking(self._sync.get_subscription, subscription_id)

    async def list_line_items(
        self, object_type: Literal["checkout_session", "invoice"], object_id: str
    ) -> list[dict[str, Any]]:
        """Every line item of a checkout session or an invoice, as Stripe-shaped dicts (top-ups)."""
        return await run_blocking(self._sync.list_line_items, object_type, object_id)
