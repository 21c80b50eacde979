"""Stripe webhook events -> the tenant's subscription record and entitlements, exactly once in effect.

Exactly once: each event id is claimed in the ledger item `STRIPE_EVENT#<id>`/`EVENT` with a
conditional put before anything happens (a duplicate delivery finds it `done` and is acknowledged), and
marked done only after every effect succeeded; a failure releases the claim and surfaces as 5xx, so
Stripe's retry applies the event again. A conditional put was chosen over Powertools idempotency
because the ledger is then keyed by the event id itself, one partition per event (Powertools' sort-key
mode puts every record under one static partition key), readable by operators, and with a lease the
platform controls; the effects themselves are idempotent, so re-applying after a crash is harmless.

Order: a subscription's state carries the Stripe event `created` it came from (`version`). An event
older than the stored state is acknowledged and ignored; a canceled subscription never comes back to
life; at a tie (Stripe's clock has one-second resolution) the subscription is re-fetched from the
provider, whose answer is current by definition. Invoice and checkout events always re-fetch, since
they do not carry the subscription's state. Records are written with optimistic concurrency
(`revision`), so concurrent deliveries of different events cannot interleave. The record is saved
before the entitlement effects run; if those fail, the redelivery of that same event (the record's
`last_event_id`) applies its state again, so the effects catch up exactly once in outcome.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from billing_platform.audit.log import AuditEntry
from billing_platform.auth.caller import Actor
from billing_platform.catalog import Plan
from billing_platform.dynamodb import utc_now
from billing_platform.errors import EventInProgress, ProviderNotFoundError, StaleWrite, ValidationError
from billing_platform.grants.repository import GrantRepository
from billing_platform.grants.topups import TopupGrants
from billing_platform.providers.base import (
    ProviderCustomer,
    ProviderSubscription,
    SyncBillingProvider,
    expandable_id,
)
from billing_platform.settings import Settings, get_settings
from billing_platform.subscriptions.models import StripeEvent, SubscriptionRecord, WebhookOutcome, subscription_terms
from billing_platform.subscriptions.repository import Claim, SubscriptionRepository

logger = logging.getLogger(__name__)

SUBSCRIPTION_EVENTS = frozenset(
    {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.paused",
        "customer.subscription.resumed",
        "customer.subscription.trial_will_end",
    }
)
CUSTOMER_EVENTS = frozenset({"customer.created", "customer.updated", "customer.deleted"})
INVOICE_EVENTS = frozenset({"invoice.paid", "invoice.payment_failed"})
CHECKOUT_EVENTS = frozenset({"checkout.session.completed", "checkout.session.async_payment_succeeded"})
HANDLED_EVENTS = SUBSCRIPTION_EVENTS | CUSTOMER_EVENTS | INVOICE_EVENTS | CHECKOUT_EVENTS
ACTOR = "stripe:webhook"
MAX_RACE_RETRIES = 5


class EntitlementEffects(Protocol):
    """The part of `billing_platform.entitlements.service.EntitlementService` the webhooks drive."""

    def apply_plan(
        self,
        tenant_id: str,
        plan_id: str,
        *,
        period_start: datetime,
        period_end: datetime,
        status: str = "active",
        source_version: int | None = None,
    ) -> None: ...

    def suspend(self, tenant_id: str, reason: str) -> None: ...

    def revoke(self, tenant_id: str) -> None: ...


def _default_entitlements(settings: Settings) -> EntitlementEffects:
    from billing_platform.entitlements.service import EntitlementService

    service: EntitlementEffects = EntitlementService(settings)
    return service


def parse_event(payload: bytes | str) -> StripeEvent:
    """The verified raw body as a Stripe event envelope (400 if it is not one)."""
    try:
        return StripeEvent.model_validate(json.loads(payload))
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"not a Stripe event: {exc}".splitlines()[0]) from None


def invoice_subscription_id(invoice: Mapping[str, Any]) -> str | None:
    """Current API versions: `parent.subscription_details.subscription`; older: `subscription`."""
    parent = invoice.get("parent") or {}
    details = parent.get("subscription_details") or {}
    return expandable_id(details.get("subscription") or invoice.get("subscription"))


def apply_entitlement_effect(record: SubscriptionRecord, entitlements: EntitlementEffects, *, by: str = "") -> None:
    """Ask of the tenant's entitlements what `record.entitlement` says: its plan (`record.plan_id`, the
    plan of its price) for its period, a suspension, or a revoke. `by` names who asks, in a suspension's
    reason, when it is not a webhook (the reconcile)."""
    if record.entitlement == "apply_plan" and record.plan_id is not None:
        if record.current_period_start is None or record.current_period_end is None:
            raise ValueError(f"subscription {record.subscription_id} has no billing period")
        entitlements.apply_plan(
            record.tenant_id,
            record.plan_id,
            period_start=record.current_period_start,
            period_end=record.current_period_end,
            status=record.status,
            source_version=record.version,
        )
    elif record.entitlement == "suspend":
        entitlements.suspend(record.tenant_id, reason=f"subscription {record.status}" + (f" ({by})" if by else ""))
    elif record.entitlement == "revoke":
        entitlements.revoke(record.tenant_id)


class WebhookProcessor:
    """Applies verified Stripe events. Every public outcome is also the ledger's `outcome`."""

    def __init__(
        self,
        provider: SyncBillingProvider,
        *,
        settings: Settings | None = None,
        entitlements: EntitlementEffects | None = None,
    ) -> None:
        self._settings = settings or get_settings()
        self._provider = provider
        self._repo = SubscriptionRepository(self._settings)
        self._entitlements = entitlements
        self._topups: TopupGrants | None = None

    @property
    def provider(self) -> SyncBillingProvider:
        return self._provider

    @property
    def entitlements(self) -> EntitlementEffects:
        if self._entitlements is None:
            self._entitlements = _default_entitlements(self._settings)
        return self._entitlements

    @property
    def topups(self) -> TopupGrants:
        if self._topups is None:
            self._topups = TopupGrants(
                GrantRepository(self._settings, self._repo.client),
                self._settings.catalog,
                self._provider,
                self._tenant_for_customer_id,
            )
        return self._topups

    def process(self, event: StripeEvent) -> WebhookOutcome:
        """Apply one verified event, exactly once in effect. Raises `EventInProgress` while another
        delivery holds its claim; any other exception leaves the event unclaimed (nothing marked done),
        so the caller answers 5xx and Stripe's retry applies it."""
        if event.type not in HANDLED_EVENTS:
            # Not claimed in the ledger: nothing changes, so a redelivery is just as harmless.
            logger.info("stripe event type not handled", extra={"event_id": event.id, "type": event.type})
            return WebhookOutcome(event_id=event.id, type=event.type, outcome="ignored_type")
        claim = self._repo.claim_event(event.id, event.type, event.created)
        if claim is Claim.DONE:
            logger.info("duplicate stripe event acknowledged", extra={"event_id": event.id})
            return WebhookOutcome(event_id=event.id, type=event.type, outcome="duplicate")
        if claim is Claim.IN_PROGRESS:
            raise EventInProgress(event.id)
        try:
            outcome, tenant_id = self._dispatch(event)
        except Exception:
            self._repo.release_event(event.id)
            raise
        self._repo.complete_event(event.id, outcome, tenant_id)
        logger.info(
            "stripe event applied",
            extra={"event_id": event.id, "type": event.type, "outcome": outcome, "tenant_id": tenant_id},
        )
        return WebhookOutcome(event_id=event.id, type=event.type, outcome=outcome, tenant_id=tenant_id)

    # --- dispatch ------------------------------------------------------------------------------
    def _dispatch(self, event: StripeEvent) -> tuple[str, str | None]:
        obj = event.data.object
        if event.type in CUSTOMER_EVENTS:
            return self._on_customer(event, ProviderCustomer.from_stripe(obj))
        if event.type in SUBSCRIPTION_EVENTS:
            return self._sync(event, ProviderSubscription.from_stripe(obj), refetched=False)
        if event.type in INVOICE_EVENTS:
            # A paid invoice may buy top-ups (its own lines) and renew a subscription: both apply.
            topup, topup_tenant = "not_a_topup", None
            if event.type == "invoice.paid":
                topup, topup_tenant = self.topups.on_invoice(obj, event.id, event.created)
            sub_id = invoice_subscription_id(obj)
            if sub_id is None:
                return ("no_subscription", None) if topup == "not_a_topup" else (topup, topup_tenant)
            outcome, tenant_id = self._sync(event, self._provider.get_subscription(sub_id), refetched=True)
            return (outcome if topup == "not_a_topup" else f"{topup};{outcome}"), tenant_id
        # checkout.session.completed / async_payment_succeeded: the session names the tenant it was made for.
        mode = obj.get("mode")
        subscription_checkout = event.type == "checkout.session.completed" and mode == "subscription"
        if mode != "payment" and not (subscription_checkout and obj.get("subscription")):
            return "not_a_subscription_checkout", None
        tenant_id = obj.get("client_reference_id") or (obj.get("metadata") or {}).get("tenant_id")
        customer_id = obj.get("customer")
        if tenant_id and customer_id:
            self._bind(str(tenant_id), str(customer_id), None, None)
        if mode == "payment":
            return self.topups.on_checkout(obj, event.id, event.created)
        sub_id = str(expandable_id(obj["subscription"]))
        return self._sync(event, self._provider.get_subscription(sub_id), refetched=True)

    def _bind(
        self, tenant_id: str, customer_id: str, email: str | None, name: str | None, version: int | None = None
    ) -> None:
        after = {"customer_id": customer_id, "email": email}
        audit = AuditEntry.by(Actor(ACTOR), tenant_id, "customer.bind", customer_id, after=after)
        if not self._repo.bind_customer(tenant_id, customer_id, email=email, name=name, audit=audit, version=version):
            logger.warning(
                "customer not bound: bound elsewhere, or a newer customer event was applied",
                extra={"tenant_id": tenant_id, "customer_id": customer_id},
            )

    def _on_customer(self, event: StripeEvent, customer: ProviderCustomer) -> tuple[str, str | None]:
        tenant_id = customer.tenant_id or self._repo.tenant_for_customer(customer.id)
        if tenant_id is None:
            return "no_tenant", None
        if event.type == "customer.deleted":
            self._repo.mark_customer_deleted(tenant_id, customer.id, version=event.created)
            return "customer_deleted", tenant_id
        self._bind(tenant_id, customer.id, customer.email, customer.name, event.created)
        return "customer_bound", tenant_id

    def _tenant_for(self, sub: ProviderSubscription) -> str | None:
        tenant_id = self._repo.tenant_for_customer(sub.customer_id) or sub.tenant_id
        return tenant_id or self._provider_tenant(sub.customer_id)

    def _tenant_for_customer_id(self, customer_id: str | None) -> str | None:
        """The bound tenant of a customer, else the tenant in the customer's Stripe metadata (bound now)."""
        if not customer_id:
            return None
        return self._repo.tenant_for_customer(customer_id) or self._provider_tenant(customer_id)

    def _provider_tenant(self, customer_id: str) -> str | None:
        try:
            customer = self._provider.get_customer(customer_id)
        except ProviderNotFoundError:
            return None
        tenant_id = customer.tenant_id
        if tenant_id:
            self._bind(tenant_id, customer.id, customer.email, customer.name)
        return tenant_id

    # --- subscription state ---------------------------------------------------------------------
    def _sync(self, event: StripeEvent, sub: ProviderSubscription, *, refetched: bool) -> tuple[str, str | None]:
        tenant_id = self._tenant_for(sub)
        if tenant_id is None:
            logger.warning("subscription of an unknown customer", extra={"customer_id": sub.customer_id})
            return "no_tenant", None
        for _ in range(MAX_RACE_RETRIES):
            current = self._repo.get_subscription(tenant_id)
            verdict = self._judge(current, sub, event.created, refetched, event.id)
            if verdict == "refetch":
                sub, refetched = self._provider.get_subscription(sub.id), True
                continue
            if verdict != "apply":
                return verdict, tenant_id
            plan = self._plan_for(sub)
            record = self._next_record(tenant_id, current, sub, plan, event)
            action = f"subscription.{event.type.rsplit('.', 1)[-1]}"
            before = current.snapshot() if current else None
            audit = AuditEntry.by(
                Actor(ACTOR, event.id), tenant_id, action, sub.id, before=before, after=record.snapshot()
            )
            try:
                self._repo.save_subscription(record, current.revision if current else None, audit)
            except StaleWrite:
                continue  # another delivery wrote first: judge again against its state
            if record.entitlement != "none":  # the entitlement service is built only when it is needed
                apply_entitlement_effect(record, self.entitlements)
            return f"applied:{record.status}", tenant_id
        raise StaleWrite(tenant_id)

    @staticmethod
    def _judge(
        current: SubscriptionRecord | None, sub: ProviderSubscription, version: int, refetched: bool, event_id: str
    ) -> str:
        if current is None:
            return "apply"
        if current.subscription_id != sub.id:
            # A different subscription of the same tenant: the live one wins, then the newer one.
            mine = (not sub.has_ended, sub.created)
            theirs = (current.status not in ("canceled", "incomplete_expired"), current.subscription_created)
            return "apply" if mine > theirs else "ignored_other_subscription"
        if current.status in ("canceled", "incomplete_expired") and not sub.has_ended:
            return "ignored_stale"  # a canceled subscription is final in Stripe
        if event_id == current.last_event_id:
            return "apply"  # a redelivery after a failure half-way: finish what this event started
        if refetched:
            return "apply"
        if version < current.version:
            return "ignored_stale"
        if version == current.version and current.last_event_id is not None:
            return "refetch"  # same second as the stored state: ask Stripe for the current object
        return "apply"

    def _plan_for(self, sub: ProviderSubscription) -> Plan | None:
        if sub.price_id is None:
            return None
        return self._settings.catalog.plan_for_price(sub.price_id)  # CatalogError -> 5xx: retried once fixed

    def _next_record(
        self,
        tenant_id: str,
        current: SubscriptionRecord | None,
        sub: ProviderSubscription,
        plan: Plan | None,
        event: StripeEvent,
    ) -> SubscriptionRecord:
        same = current is not None and current.subscription_id == sub.id
        past_due_since = None
        if sub.status == "past_due":
            past_due_since = (
                current.past_due_since
                if same and current is not None and current.past_due_since
                else datetime.fromtimestamp(event.created, tz=UTC)
            )
        version = max(event.created, current.version if same and current is not None else 0)
        return SubscriptionRecord(
            tenant_id=tenant_id,
            subscription_id=sub.id,
            customer_id=sub.customer_id,
            plan_id=plan.id if plan else None,
            subscription_created=sub.created,
            **subscription_terms(sub),
            past_due_since=past_due_since,
            entitlement=self._entitlement_action(sub.status, plan, past_due_since),
            version=version,
            last_event_id=event.id,
        )

    def _entitlement_action(self, status: str, plan: Plan | None, past_due_since: datetime | None) -> str:
        if status in ("active", "trialing"):
            return "apply_plan"
        if status == "past_due":
            grace = timedelta(days=plan.past_due_grace_days if plan else 0)
            in_grace = past_due_since is not None and utc_now() < past_due_since + grace
            return "apply_plan" if in_grace else "suspend"
        if status in ("unpaid", "paused"):
            return "suspend"
        if status in ("canceled", "incomplete_expired"):
            return "revoke"
        return "none"  # incomplete: nothing paid yet, the tenant keeps what it had
