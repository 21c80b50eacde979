"""Stripe top-ups -> grants, exactly once per Stripe object line whatever the webhook retries and order.

A top-up is a one-off payment for a price listed under `topups` in the catalog, reported by
`checkout.session.completed` / `checkout.session.async_payment_succeeded` (payment mode, paid) or by
`invoice.paid`. Each paid line of a top-up price becomes one grant whose id is derived from
`<object id>:<line id>`, created with a conditional put, so a redelivered, replayed or re-ordered event
re-derives the same ids and creates nothing. A checkout session that created an invoice
(`invoice_creation`) is left to that invoice's `invoice.paid`: the purchase has one source, the invoice,
whichever of the two events comes first or is retried.

Line items come from the event's own object when it carries them all (an invoice's `lines`), otherwise
from Stripe (a checkout session's line items are never in the event).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Protocol

from billing_platform.audit.log import AuditEntry
from billing_platform.auth.caller import Actor
from billing_platform.catalog.models import Catalog, TopupPrice
from billing_platform.errors import TopupTenantUnknown
from billing_platform.grants.models import Grant, GrantSource, GrantState, grant_id_for_source
from billing_platform.grants.repository import GrantRepository
from billing_platform.ids import TENANT_ID_PATTERN
from billing_platform.providers.base import expandable_id

logger = logging.getLogger(__name__)

ACTOR = "stripe:webhook"
LineSource = Literal["checkout_session", "invoice"]


class LineItemSource(Protocol):
    """The part of the billing provider that lists a Stripe object's line items (raw Stripe dicts)."""

    def list_line_items(self, object_type: LineSource, object_id: str) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class TopupLine:
    line_id: str
    price_id: str
    quantity: Decimal


def line_price_id(line: Mapping[str, Any]) -> str | None:
    """A line's price: `pricing.price_details.price` (invoice lines of current API versions), or `price`
    (checkout line items and older invoice lines; an id or an expanded object)."""
    pricing = line.get("pricing") or {}
    details = pricing.get("price_details") or {}
    return expandable_id(details.get("price") or line.get("price"))


def line_quantity(line: Mapping[str, Any]) -> Decimal:
    raw = line.get("quantity_decimal") or line.get("quantity") or 1
    try:
        quantity = Decimal(str(raw))
    except InvalidOperation:
        return Decimal(0)
    return quantity if quantity.is_finite() else Decimal(0)


def topup_lines(lines: Sequence[Mapping[str, Any]], catalog: Catalog) -> list[TopupLine]:
    """The lines that buy a catalog top-up (other prices on the same invoice are not grants)."""
    found: list[TopupLine] = []
    for line in lines:
        price_id = line_price_id(line)
        if price_id is None or catalog.topup_for_price(price_id) is None:
            continue
        quantity = line_quantity(line)
        if quantity <= 0 or not line.get("id"):
            logger.warning("top-up line without id or quantity ignored", extra={"price_id": price_id})
            continue
        found.append(TopupLine(line_id=str(line["id"]), price_id=price_id, quantity=quantity))
    return found


def valid_tenant_id(value: object) -> str | None:
    return value if isinstance(value, str) and re.fullmatch(TENANT_ID_PATTERN, value) else None


class TopupGrants:
    """Turns paid Stripe top-up objects into grants. Outcomes are short strings for the webhook ledger."""

    def __init__(
        self,
        repository: GrantRepository,
        catalog: Catalog,
        lines: LineItemSource,
        tenant_for_customer: Callable[[str | None], str | None],
    ) -> None:
        self._repo = repository
        self._catalog = catalog
        self._lines = lines
        self._tenant_for_customer = tenant_for_customer

    def on_checkout(self, session: Mapping[str, Any], event_id: str, event_created: int) -> tuple[str, str | None]:
        """A completed checkout session in payment mode."""
        if session.get("payment_status") not in ("paid", "no_payment_required"):
            return "topup_payment_pending", None  # async payment: granted on async_payment_succeeded
        if session.get("invoice"):
            return "topup_via_invoice", None  # granted once, from the invoice's invoice.paid
        session_id = str(session["id"])
        metadata = session.get("metadata") or {}
        tenant_id = (
            valid_tenant_id(session.get("client_reference_id"))
            or valid_tenant_id(metadata.get("tenant_id"))
            or self._tenant_for_customer(expandable_id(session.get("customer")))
        )
        lines = topup_lines(self._lines.list_line_items("checkout_session", session_id), self._catalog)
        if not lines:
            return "not_a_topup", tenant_id
        if tenant_id is None:
            raise TopupTenantUnknown(session_id)
        paid_at = datetime.fromtimestamp(event_created, UTC)
        return self._grant(tenant_id, session_id, GrantSource.STRIPE_CHECKOUT, lines, paid_at, event_id), tenant_id

    def on_invoice(self, invoice: Mapping[str, Any], event_id: str, event_created: int) -> tuple[str, str | None]:
        """A paid invoice: its top-up lines (a subscription invoice has none and grants nothing)."""
        invoice_id = str(invoice["id"])
        listed = invoice.get("lines") or {}
        raw: list[Mapping[str, Any]] = list(listed.get("data") or [])
        if listed.get("has_more") or not raw:
            raw = list(self._lines.list_line_items("invoice", invoice_id))
        lines = topup_lines(raw, self._catalog)
        if not lines:
            return "not_a_topup", None
        metadata = invoice.get("metadata") or {}
        tenant_id = self._tenant_for_customer(expandable_id(invoice.get("customer"))) or valid_tenant_id(
            metadata.get("tenant_id")
        )
        if tenant_id is None:
            raise TopupTenantUnknown(invoice_id)
        transitions = invoice.get("status_transitions") or {}
        paid_at = datetime.fromtimestamp(int(transitions.get("paid_at") or event_created), UTC)
        return self._grant(tenant_id, invoice_id, GrantSource.STRIPE_INVOICE, lines, paid_at, event_id), tenant_id

    def _grant(
        self,
        tenant_id: str,
        object_id: str,
        source: GrantSource,
        lines: list[TopupLine],
        paid_at: datetime,
        event_id: str,
    ) -> str:
        grants = [self._grant_of(tenant_id, object_id, source, line, paid_at) for line in lines]
        after = {"grants": [g.to_dict(paid_at) for g in grants]}
        audit = AuditEntry.by(Actor(ACTOR, event_id), tenant_id, "grant.topup", object_id, after=after)
        if not self._repo.create(grants, audit):
            logger.info("top-up already granted", extra={"tenant_id": tenant_id, "source_id": object_id})
            return "topup_duplicate"
        logger.info(
            "top-up granted",
            extra={"tenant_id": tenant_id, "source_id": object_id, "grants": [g.grant_id for g in grants]},
        )
        return f"topup_granted:{len(grants)}"

    def _grant_of(
        self, tenant_id: str, object_id: str, source: GrantSource, line: TopupLine, paid_at: datetime
    ) -> Grant:
        topup: TopupPrice = self._catalog.topups[line.price_id]
        source_id = f"{object_id}:{line.line_id}"
        expiry = paid_at + timedelta(days=topup.expires_after_days) if topup.expires_after_days else None
        amount = topup.amount * line.quantity
        return Grant(
            tenant_id=tenant_id,
            resource_type=topup.resource_type,
            grant_id=grant_id_for_source(source_id),
            amount=amount,
            remaining=amount,
            used=Decimal(0),
            priority=topup.priority,
            valid_until=expiry,
            state=GrantState.ACTIVE,
            source=source,
            source_id=source_id,
            created_at=paid_at,
            created_by=ACTOR,
            price_id=line.price_id,
        )
