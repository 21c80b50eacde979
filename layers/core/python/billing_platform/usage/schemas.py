"""The HTTP API's request and response bodies for usage: the batch ingest, the tenant's daily trend and
the operator's top consumers."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from billing_platform.api.schemas import DecimalText, InstantText
from billing_platform.usage.ingest import MAX_RECORDS_PER_REQUEST


class IngestRequest(BaseModel):
    """`POST /v1/usage`. Records are checked one by one by the service, so one bad record gets its own
    error and the others are still accepted."""

    model_config = ConfigDict(extra="forbid")

    records: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_RECORDS_PER_REQUEST,
        description="Each an object: resource_type, quantity (a number > 0) and optionally record_id (a record "
        "sent again with the same id counts once), tenant_id (default: the key's tenant; an operator must name "
        "it), timestamp (ISO 8601 with a timezone, default now; neither in the future nor older than the "
        "deduplication window) and metadata (an object)",
    )


class RecordErrorOut(BaseModel):
    index: int = Field(description="The record's position in the request's records")
    code: str
    message: str
    status: int = Field(description="The HTTP status the record alone would have been refused with")


class IngestOut(BaseModel):
    """202: the accepted records are on the usage queue; the refused ones are listed with their error."""

    accepted: int
    rejected: int
    record_ids: list[str] = Field(description="The id of each accepted record, in request order")
    errors: list[RecordErrorOut]


class TrendPointOut(BaseModel):
    date: Annotated[str, WithJsonSchema({"type": "string", "format": "date"})] = Field(description="A UTC day")
    quantity: DecimalText


class UsageTrendOut(BaseModel):
    """One point per UTC day for the last `days` days (today included), oldest first, zero-filled."""

    tenant_id: str
    resource_type: str
    days: int
    total: DecimalText = Field(description="The sum of the points")
    points: list[TrendPointOut]


class TopConsumerOut(BaseModel):
    tenant_id: str
    quantity: DecimalText


class TopConsumersOut(BaseModel):
    """The tenants with the most usage of a resource in the whole hours [start, end), most first; ties by
    tenant id."""

    resource_type: str
    start: InstantText
    end: InstantText
    items: list[TopConsumerOut]
