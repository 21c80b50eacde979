"""The portal's pages and assets as API Gateway proxy responses: the files `make setup` bundles into the
portal function's `static/` folder (web/build.mjs), each with the headers a page on the API's own origin
needs. Pure file reads; no AWS call.

The Content-Security-Policy allows scripts, styles and fetches from the page's own origin only: no inline
script or style attribute, no eval, no frame, no form posting elsewhere. Data reaches the page as JSON
through `fetch` and is written with textContent, never parsed as HTML.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGES = {"/portal": "portal.html", "/console": "console.html"}
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
ASSET_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,40}\.(?:js|css)$"
_ASSET_NAME = re.compile(ASSET_NAME_PATTERN)
# Scripts other origins may include (a SaaS embedding the usage widget): readable cross-origin.
EMBEDDABLE = frozenset({"billing-usage.js"})


def _headers(content_type: str, *, cache: str, cross_origin: bool = False) -> dict[str, str]:
    headers = {
        "Content-Type": content_type,
        "Cache-Control": cache,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "Cross-Origin-Resource-Policy": "cross-origin" if cross_origin else "same-origin",
    }
    if not content_type.startswith("text/html"):
        # Subresources need no document policy; the header stays harmless on them but is noise.
        del headers["Content-Security-Policy"]
    else:
        headers["X-Frame-Options"] = "DENY"
    if cross_origin:
        headers["Access-Control-Allow-Origin"] = "*"
    return headers


def _error(status: int, code: str, message: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"code": code, "message": message}),
    }


@dataclass(frozen=True)
class StaticPages:
    """The bundled pages and assets of one folder (the function's `static/`)."""

    folder: Path

    def page(self, path: str) -> dict[str, Any]:
        """The proxy response for a page route (`/portal`, `/console`)."""
        name = PAGES.get(path)
        if name is None:
            return _error(404, "not_found", f"no page at {path}")
        return self._file(name, cache="no-cache")

    def asset(self, name: str) -> dict[str, Any]:
        """The proxy response for `/portal/assets/{name}`: a bundled script or stylesheet, or 404."""
        if not _ASSET_NAME.fullmatch(name):
            return _error(404, "not_found", "no such asset")
        return self._file(name, cache="no-cache", cross_origin=name in EMBEDDABLE)

    def _file(self, name: str, *, cache: str, cross_origin: bool = False) -> dict[str, Any]:
        path = self.folder / name
        if not path.is_file():
            if not self.folder.is_dir():
                # The bundle was never built: a deployment or checkout problem, said plainly.
                return _error(500, "assets_missing", "the portal's assets are not built (make setup builds them)")
            return _error(404, "not_found", "no such asset")
        content_type = _TYPES[path.suffix]
        return {
            "statusCode": 200,
            "headers": _headers(content_type, cache=cache, cross_origin=cross_origin),
            "body": path.read_text(encoding="utf-8"),
        }
