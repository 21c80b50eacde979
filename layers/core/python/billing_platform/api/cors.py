"""Cross-origin reads for the embeddable widget (`<billing-usage>` on a SaaS's own page).

The contract: a page on another origin may read an answer only with a portal token minted for that origin
(`allowed_origins`, exact `scheme://host[:port]` strings). The function answering echoes the request's
`Origin` in `Access-Control-Allow-Origin` when the token's authorizer context lists it, and says nothing
otherwise, so the browser withholds the answer from any other page. Preflights (OPTIONS) on the routes a
portal token may read are answered by the gateway (`*`): they carry no data and grant nothing
but the right to send the request, which the token then decides. The gateway's own errors (401, 403, 429)
carry `Access-Control-Allow-Origin: *` so a widget can tell an expired token from a network failure;
they hold no tenant data. No credentials mode: the token travels in the Authorization header, never a cookie.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from billing_platform.portal.models import ALLOWED_ORIGINS_CONTEXT

# What a preflight allows: reads with a bearer token, cached by the browser for ten minutes.
PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Accept",
    "Access-Control-Max-Age": "600",
}


def _origin(event: Mapping[str, Any]) -> str | None:
    for name, value in (event.get("headers") or {}).items():
        if name.lower() == "origin" and isinstance(value, str):
            return value
    return None


def allowed_origin(event: Mapping[str, Any]) -> str | None:
    """The request's `Origin` when the caller's portal token allows it, else None."""
    origin = _origin(event)
    if origin is None:
        return None
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    allowed = str(authorizer.get(ALLOWED_ORIGINS_CONTEXT) or "").split()
    return origin if origin in allowed else None


def with_cors(event: Mapping[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """`response` (a proxy response) with the CORS headers its caller's token allows, errors included."""
    origin = allowed_origin(event)
    if origin is None:
        return response
    extra = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    if "multiValueHeaders" in response:
        multi = dict(response.get("multiValueHeaders") or {})
        multi.update({name: [value] for name, value in extra.items()})
        return {**response, "multiValueHeaders": multi}
    return {**response, "headers": {**(response.get("headers") or {}), **extra}}
