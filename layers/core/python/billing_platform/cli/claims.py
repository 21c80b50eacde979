"""`billing-admin meter drop-claim`: release a meter claim that Stripe refuses for good.

A claim stays until Stripe confirms it, so a permanent refusal (a customer deleted in Stripe, a meter
archived) keeps it, and the reporter's lag alarm, forever. Only refused claims may be dropped: Stripe
never accepted them, so dropping one loses nothing; the next run claims the hour's usage afresh, with
the tenant's customer and meter of that time. (Were the claim accepted after all, the new claim of an
unchanged hour total carries the same identifier, which Stripe rejects as a duplicate within 24 hours;
past that, or once more usage landed in the hour, it would bill again: drop only what Stripe refused.)
The drop and its audit entry commit together."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from billing_platform.audit.log import AuditEntry, AuditLog
from billing_platform.errors import ConflictError, NotFoundError
from billing_platform.metering.repository import MeterWatermarkRepository
from billing_platform.settings import Settings


def drop_claim(tenant_id: str, resource_type: str, hour: str, settings: Settings, *, actor: str) -> dict[str, Any]:
    """Drop the claim of one tenant x resource x hour; NotFoundError if there is none."""
    watermarks = MeterWatermarkRepository(settings)
    mark = watermarks.hour(tenant_id, resource_type, hour)
    if mark is None or mark.pending is None:
        raise NotFoundError(f"no meter claim for {tenant_id} / {resource_type} / {hour}", code="claim_not_found")
    claim = {k: str(v) for k, v in asdict(mark.pending).items()}
    audit = AuditEntry(
        tenant_id=tenant_id,
        actor=actor,
        action="meter.drop_claim",
        target=f"{resource_type}/{hour}",
        before={"reported": str(mark.reported), "claim": claim},
    )
    request = AuditLog(settings).put_item_request(audit)
    if not watermarks.drop_claim(tenant_id, resource_type, hour, mark.pending.identifier, audit=request):
        raise ConflictError(
            "the claim changed meanwhile (a reporter run finished it); look again", code="claim_changed"
        )
    return {"dropped": claim, "reported": str(mark.reported), "audit_entry": audit.entry_id}
