"""The operator API's use cases: customers and subscriptions through the billing provider.

Stripe is the source of truth for subscriptions; this service asks it for changes and answers with
its view. The tenant's stored subscription state and entitlements follow from the webhooks Stripe
sends for each change (`billing_platform.subscriptions.webhooks`), so there is one writer of them.
What this service stores itself is the tenant <-> customer binding, with an audit entry per mutation.
"""

from __future__ import annotations

from pydantic import BaseModel

from billing_platform.audit.log import AuditEntry
from billing_platform.auth.caller import Actor
from billing_platform.errors import CatalogError, ConflictError, NotFoundError
from billing_platform.providers.base import ENDED_STATUSES, ProviderSubscription, SyncBillingProvider
from billing_platform.settings import Settings, get_settings
from billing_platform.subscriptions.repository import SubscriptionRepository
from billing_platform.subscriptions.schemas import (
    CreateCustomerRequest,
    CreateSubscriptionRequest,
    CustomerOut,
    SubscriptionOut,
    UpdateSubscriptionRequest,
)


class SubscriptionService:
    """The operator use cases. Each mutation is one provider call (with the caller's idempotency key)
    plus one audit entry; a request the catalog or the stored binding rejects never reaches Stripe."""

    def __init__(
        self,
        provider: SyncBillingProvider,
        *,
        settings: Settings | None = None,
    ) -> None:
        self._settings = settings or get_settings()
        self._provider = provider
        self._repo = SubscriptionRepository(self._settings)

    def _audit(
        self,
        tenant_id: str,
        actor: Actor,
        action: str,
        target: str,
        after: BaseModel,
        before: BaseModel | None = None,
    ) -> AuditEntry:
        snapshot = before.model_dump(mode="json") if before is not None else None
        return AuditEntry.by(actor, tenant_id, action, target, before=snapshot, after=after.model_dump(mode="json"))

    def _plan_id(self, price_id: str | None) -> str | None:
        if price_id is None:
            return None
        try:
            return self._settings.catalog.plan_for_price(price_id).id
        except CatalogError:
            return None

    def _out(self, sub: ProviderSubscription) -> SubscriptionOut:
        tenant_id = self._repo.tenant_for_customer(sub.customer_id) or sub.tenant_id
        return SubscriptionOut.from_provider(sub, tenant_id=tenant_id, plan_id=self._plan_id(sub.price_id))

    def _tenant_of(self, sub: ProviderSubscription) -> str:
        return self._repo.tenant_for_customer(sub.customer_id) or sub.tenant_id or f"customer:{sub.customer_id}"

    def create_customer(self, request: CreateCustomerRequest, actor: Actor) -> CustomerOut:
        """Create the tenant's billing customer (tenant id in its metadata) and bind both ways.
        409 if the tenant already has one."""
        existing = self._repo.customer_for_tenant(request.tenant_id)
        if existing is not None:
            raise ConflictError(
                f"tenant {request.tenant_id} already has billing customer {existing}",
                code="customer_exists",
                details={"customer_id": existing},
            )
        customer_id = self._provider.create_customer(
            request.tenant_id, request.email, request.name, idempotency_key=actor.idempotency_key
        )
        customer = self._provider.get_customer(customer_id)
        out = CustomerOut.from_provider(customer, request.tenant_id)
        audit = self._audit(request.tenant_id, actor, "customer.create", customer.id, out)
        if not self._repo.bind_customer(
            request.tenant_id, customer.id, email=customer.email, name=customer.name, audit=audit
        ):
            raise ConflictError(
                f"tenant {request.tenant_id} was bound to another customer meanwhile", code="customer_exists"
            )
        return out

    def get_customer(self, customer_id: str) -> CustomerOut:
        customer = self._provider.get_customer(customer_id)
        return CustomerOut.from_provider(customer, self._repo.tenant_for_customer(customer_id))

    def create_subscription(self, request: CreateSubscriptionRequest, actor: Actor) -> SubscriptionOut:
        plan = self._settings.catalog.plan_for_price(request.price_id)  # 422 unknown_price before Stripe is asked
        customer_id = self._repo.customer_for_tenant(request.tenant_id)
        if customer_id is None:
            raise NotFoundError(
                f"tenant {request.tenant_id} has no billing customer; POST /v1/customers first",
                code="customer_not_found",
            )
        current = self._repo.get_subscription(request.tenant_id)
        if current is not None and current.status not in ENDED_STATUSES:
            # One subscription per tenant: a plan change is a PATCH of the existing one (prorated).
            raise ConflictError(
                f"tenant {request.tenant_id} already has subscription {current.subscription_id} "
                f"({current.status}); PATCH it to change the plan",
                code="subscription_exists",
                details={"subscription_id": current.subscription_id, "status": current.status},
            )
        sub = self._provider.create_subscription(
            customer_id, request.price_id, request.trial_days, idempotency_key=actor.idempotency_key
        )
        out = SubscriptionOut.from_provider(sub, tenant_id=request.tenant_id, plan_id=plan.id)
        self._repo_audit(self._audit(request.tenant_id, actor, "subscription.create", sub.id, out))
        return out

    def get_subscription(self, subscription_id: str) -> SubscriptionOut:
        return self._out(self._provider.get_subscription(subscription_id))

    def change_price(self, subscription_id: str, request: UpdateSubscriptionRequest, actor: Actor) -> SubscriptionOut:
        self._settings.catalog.plan_for_price(request.price_id)
        # Read first: the audit entry records the state before the change (and a missing subscription
        # is a 404 before any mutation is attempted).
        before = self._out(self._provider.get_subscription(subscription_id))
        sub = self._provider.update_subscription(
            subscription_id, request.price_id, idempotency_key=actor.idempotency_key
        )
        out = self._out(sub)
        self._repo_audit(self._audit(self._tenant_of(sub), actor, "subscription.change_price", sub.id, out, before))
        return out

    def cancel(self, subscription_id: str, *, immediate: bool, actor: Actor) -> SubscriptionOut:
        before = self._out(self._provider.get_subscription(subscription_id))
        sub = self._provider.cancel_subscription(subscription_id, immediate, idempotency_key=actor.idempotency_key)
        out = self._out(sub)
        action = "subscription.cancel_now" if immediate else "subscription.cancel_at_period_end"
        self._repo_audit(self._audit(self._tenant_of(sub), actor, action, sub.id, out, before))
        return out

    def _repo_audit(self, entry: AuditEntry) -> None:
        self._repo.record_audit(entry)
