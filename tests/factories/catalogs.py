"""Plan catalogs for tests, built from the few facts each test cares about instead of pasted JSON.

    catalog(plans={"small": quota("300")}, default_plan="small")
    catalog(plans={"hot": plan(quota("301"), shards=4)})

`catalog_json` gives the same document as text (for code that reads `CATALOG_JSON`-style settings)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from billing_platform.catalog.models import Catalog, parse_catalog

RESOURCE = "executions"


def quota(
    limit: str | None,
    policy: str = "hard",
    *,
    resource_type: str = RESOURCE,
    windows: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One plan's quotas: `limit` units of `resource_type` per period (None: unlimited), and at most
    `windows[name]` per window (e.g. {"minute": "300"})."""
    terms: dict[str, Any] = {"policy": policy if limit is not None else "unlimited"}
    if limit is not None:
        terms["limit"] = limit
    if windows is not None:
        terms["windows"] = dict(windows)
    return {"quotas": {resource_type: terms}}


def plan(*parts: Mapping[str, Any], name: str | None = None, shards: int | None = None, **extra: Any) -> dict[str, Any]:
    """A plan from quota parts (merged), with `counter_shards` when `shards` is given."""
    quotas: dict[str, Any] = {}
    for part in parts:
        quotas.update(part.get("quotas", {}))
    body: dict[str, Any] = {"name": name or "Plan", "quotas": quotas, **extra}
    if shards is not None:
        body["counter_shards"] = shards
    return body


def catalog_json(
    plans: Mapping[str, Mapping[str, Any]],
    *,
    default_plan: str | None = None,
    resource_types: tuple[str, ...] = (RESOURCE,),
    version: str = "test",
    **extra: Any,
) -> str:
    """The catalog document: `plans` by id (a quota-only mapping becomes a plan), the first as default."""
    document = {
        "version": version,
        "resource_types": {r: {"unit": r.rstrip("s"), "meter_event_name": r} for r in resource_types},
        "default_plan": default_plan or next(iter(plans)),
        "plans": {pid: dict(p) if "name" in p else plan(p, name=pid) for pid, p in plans.items()},
        **extra,
    }
    return json.dumps(document)


def catalog(plans: Mapping[str, Mapping[str, Any]], **options: Any) -> Catalog:
    """`catalog_json`, parsed (and so validated) as the platform parses it."""
    return parse_catalog(catalog_json(plans, **options))
