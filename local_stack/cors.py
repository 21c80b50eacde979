"""CORS preflights as the deployed API answers them (infra.constructs.api adds the same OPTIONS methods):
an `OPTIONS` on a route a portal token may read (`resources.portal_routes`) gets 204 with the preflight
headers of billing_platform.api.cors and `Access-Control-Allow-Origin: *`, as CDK's MOCK preflight does;
whether the answer itself may be read is decided per request by the token's allowed origins."""

from __future__ import annotations

import re

from billing_platform import resources
from billing_platform.api.cors import PREFLIGHT_HEADERS


def _pattern(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"[^/]+", re.escape(template)) + "$")


PREFLIGHT_PATHS = tuple(
    _pattern(path)
    for path in sorted({route.path for entity in (False, True) for route in resources.portal_routes(entity=entity)})
)


def preflight_headers(method: str, path: str) -> list[tuple[str, str]] | None:
    """The headers of a 204 preflight answer, or None when this is not a preflight the API answers."""
    if method != "OPTIONS" or not any(p.match(path) for p in PREFLIGHT_PATHS):
        return None
    return [("Access-Control-Allow-Origin", "*"), *PREFLIGHT_HEADERS.items()]
