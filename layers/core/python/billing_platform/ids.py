"""Identifier formats every entry point validates against, defined once.

A tenant id becomes part of DynamoDB keys joined with `#` (`TENANT#<tid>`, `AGG#<tid>#<resource>` …)
and of API paths, so its alphabet leaves out `#`, `/` and whitespace."""

from __future__ import annotations

TENANT_ID_MAX_LENGTH = 64
TENANT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$"
