"""Placeholder until its issue lands; replaced by the real entry point."""

from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise NotImplementedError("meter_reporter")
