"""Identifier formats every entry point validates against, defined once.

A tenant id becomes part of DynamoDB keys joined with `#` (`TENANT#<tid>`, `AGG#<tid>#<resource>` …)
and of API paths, so its alphabet leaves out `#`, `/` and whitespace."""

from __future__ import annotations

from uuid import UUID

TENANT_ID_MAX_LENGTH = 64
TENANT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$"

TenantIdLike = str | UUID
"""What the library accepts as a tenant id: a string, or a `uuid.UUID` (an application's `tenant.id`)."""


def tenant_id_str(value: TenantIdLike) -> str:
    """The tenant id as the platform stores it: a UUID becomes its canonical string (lowercase,
    hyphenated, 36 characters, inside `TENANT_ID_PATTERN`); a string is returned unchanged and is
    validated where it is used, like every other tenant id."""
    return str(value) if isinstance(value, UUID) else value
