"""The HTTP vocabulary every domain's `schemas.py` shares: how a quantity and an instant are written in an
answer, the one error body of the API, and the health answer (a route of no domain)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, WithJsonSchema

# Quantities travel as decimal text, never as JSON numbers (a float would round them): "1000", "2.5".
DecimalText = Annotated[str, WithJsonSchema({"type": "string", "description": 'A decimal number as text, e.g. "2.5"'})]
# Instants are ISO 8601 in UTC with an offset ("2026-12-07T10:00:00+00:00"); generated clients parse them.
InstantText = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


class ErrorBody(BaseModel):
    """Every refusal of the API, whatever its status (api.errors), and of the gateway in front of it."""

    code: str = Field(description="machine-readable error code")
    message: str = Field(description="what went wrong, for a human")
    details: Any = Field(default=None, description="structured context (field errors, limits ...)")


class HealthOut(BaseModel):
    status: Literal["ok"] = Field(description="Always ok: the function answered")
