"""HTTP batch ingest (`POST /v1/usage`): validate each record, keep the caller to its own tenant, and put
the accepted ones on the usage queue by the same path as the tracker."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from billing_platform.auth.caller import Caller
from billing_platform.dynamodb import utc_now
from billing_platform.errors import BillingError, TenantAccessDenied, UnprocessableError, UsageEnqueueError
from billing_platform.settings import Settings, get_settings
from billing_platform.usage.dimensions import DimensionGate
from billing_platform.usage.models import UsageRecord, check_record, new_record_id, parse_record
from billing_platform.usage.queue import SqsUsageQueue, UsageSender, send_records

MAX_RECORDS_PER_REQUEST = 1000
_FIELDS = {"record_id", "tenant_id", "resource_type", "quantity", "timestamp", "metadata", "dimensions", "entity_id"}


@dataclass(frozen=True)
class RecordError:
    index: int
    code: str
    message: str
    status: int

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "code": self.code, "message": self.message, "status": self.status}


@dataclass
class IngestResult:
    record_ids: list[str] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": len(self.record_ids),
            "rejected": len(self.errors),
            "record_ids": self.record_ids,
            "errors": [e.to_dict() for e in self.errors],
        }


def derived_record_id(tenant_id: str, idempotency_key: str, index: int) -> str:
    """Record id for the `index`-th record of a request retried under the same Idempotency-Key."""
    digest = hashlib.sha256(f"{tenant_id}\x1f{idempotency_key}\x1f{index}".encode()).hexdigest()
    return f"use_{digest[:32]}"


class UsageIngestService:
    """Accepts a batch of records for one caller: 202-style partial acceptance with per-record errors."""

    def __init__(self, settings: Settings | None = None, gate: DimensionGate | None = None) -> None:
        self._settings = settings or get_settings()
        self._sender: UsageSender | None = None  # built on the first send
        self._gate = gate or DimensionGate(self._settings)

    @property
    def sender(self) -> UsageSender:
        if self._sender is None:
            if not self._settings.usage_queue_url:
                raise BillingError("the usage queue is not configured", code="misconfigured")
            self._sender = SqsUsageQueue(self._settings.usage_queue_url)
        return self._sender

    def ingest(self, caller: Caller, records: list[Any], *, idempotency_key: str | None = None) -> IngestResult:
        """Validate every record; send the valid ones. Raises `TenantAccessDenied` when every record names
        another tenant, `UnprocessableError` when none is valid (nothing is sent in either case), and
        `UsageEnqueueError` when the queue did not take them all."""
        if not 1 <= len(records) <= MAX_RECORDS_PER_REQUEST:
            raise UnprocessableError(f"records must hold 1 to {MAX_RECORDS_PER_REQUEST} records")
        now = utc_now()
        result = IngestResult()
        accepted: list[UsageRecord] = []
        seen: set[tuple[str, str]] = set()
        for index, raw in enumerate(records):
            try:
                record = self._validated(caller, raw, index, idempotency_key, now)
                key = (record.tenant_id, record.record_id)
                if key in seen:
                    raise UnprocessableError("record_id appears twice in this request", code="duplicate_record_id")
                seen.add(key)
            except BillingError as exc:
                result.errors.append(RecordError(index, exc.code, exc.message, exc.http_status))
                continue
            accepted.append(record)
            result.record_ids.append(record.record_id)
        if not accepted:
            if all(e.status == TenantAccessDenied.http_status for e in result.errors):
                raise TenantAccessDenied("this API key can only report usage of its own tenant")
            raise UnprocessableError("no valid usage record", details={"errors": [e.to_dict() for e in result.errors]})
        report = send_records(self.sender, [r.wire_json() for r in accepted], self._settings.usage_tracker_batch_size)
        if report.unsent:
            raise UsageEnqueueError(
                "the usage queue did not take every record; retry with the same record ids",
                details={"sent": report.sent, "unsent": len(report.unsent), "record_ids": result.record_ids},
            )
        return result

    def _validated(
        self, caller: Caller, raw: Any, index: int, idempotency_key: str | None, now: datetime
    ) -> UsageRecord:
        if not isinstance(raw, Mapping):
            raise UnprocessableError("a record must be a JSON object")
        unknown = set(raw) - _FIELDS
        if unknown:
            raise UnprocessableError(f"unknown fields: {', '.join(sorted(map(str, unknown)))}")
        # Defaults only for absent (or null) fields: a present but empty or wrong-typed value is refused,
        # never replaced (`""` must not become the caller's tenant or a fresh record id).
        data = {k: v for k, v in raw.items() if v is not None}
        if "tenant_id" not in data:
            if caller.tenant_id is None:
                raise UnprocessableError("tenant_id is required", details={"field": "tenant_id"})
            data["tenant_id"] = caller.tenant_id
        tenant = data["tenant_id"]
        if not isinstance(tenant, str):
            raise UnprocessableError("tenant_id: must be a string", details={"field": "tenant_id"})
        caller.require_tenant(tenant)
        if "record_id" not in data:
            data["record_id"] = (
                derived_record_id(tenant, idempotency_key, index) if idempotency_key else new_record_id()
            )
        data.setdefault("timestamp", now)
        if isinstance(data.get("quantity"), bool) or "quantity" not in data:
            raise UnprocessableError("quantity must be a number", details={"field": "quantity"})
        record = parse_record(data)
        check_record(record, self._settings.catalog, now=now, max_age=self._settings.usage_record_max_age)
        if record.dimensions or record.entity_id is not None:
            self._gate.admit(record)
        return record
