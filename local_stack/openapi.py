"""One OpenAPI document for the whole API, merged from each loaded function's Powertools resolver, and a
Swagger UI page that works offline (Powertools ships the Swagger UI bundle)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler.openapi.merge import OpenAPIMerge

from billing_platform import resources
from local_stack.runtime import FunctionRuntime

log = logging.getLogger("local_stack.openapi")

BEARER_SCHEME = "bearerAuth"


def merged_openapi(runtime: FunctionRuntime, server_url: str) -> dict[str, Any]:
    """Paths and components of every API function whose handler module has an `app` resolver.
    Placeholders without one are skipped (their routes appear once their owners land them)."""
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer, Server, Tag

    from billing_platform.api.app import ApiTag

    # Every route but /health and the Stripe webhook is behind the authorizer, which reads a bearer token
    # (a tenant key or the operator token): declared so Swagger UI's "Authorize" sends it.
    merge = OpenAPIMerge(
        title="Billing platform (local)",
        version="1.0.0",
        servers=[Server(url=server_url)],
        security_schemes={BEARER_SCHEME: HTTPBearer(description="A tenant API key or the operator token")},
        security=[{BEARER_SCHEME: []}],
        tags=[Tag(name=tag.value, description=tag.description) for tag in ApiTag],
        on_conflict="warn",
    )
    for spec in resources.FUNCTIONS:
        if not spec.routes:
            continue
        try:
            app = getattr(runtime.module(spec.name), "app", None)
        except Exception:
            log.warning("functions/%s could not be imported; left out of the OpenAPI document", spec.name)
            continue
        if app is None or not hasattr(app, "get_openapi_schema"):
            continue
        try:
            merge.add_schema(app.get_openapi_schema())
        except Exception as exc:  # one function's broken schema must not hide the others
            log.warning("functions/%s: no OpenAPI schema (%s: %s)", spec.name, type(exc).__name__, exc)
    # The JSON form: get_openapi_schema() keeps enum members (e.g. ParameterInType) that json.dumps refuses.
    document: dict[str, Any] = json.loads(merge.get_openapi_json_schema())
    return document


def swagger_html(document: dict[str, Any]) -> bytes:
    """The Swagger UI page with `document` inlined: Powertools' template takes the spec itself (a JS
    literal), not its URL. `</` is escaped so no string in the document can close the script element."""
    from aws_lambda_powertools.event_handler.openapi import swagger_ui
    from aws_lambda_powertools.event_handler.openapi.swagger_ui.html import generate_swagger_html

    folder = Path(swagger_ui.__file__).parent
    js = (folder / "swagger-ui-bundle.min.js").read_text(encoding="utf-8")
    css = (folder / "swagger-ui.min.css").read_text(encoding="utf-8")
    spec = json.dumps(document).replace("</", "<\\/")
    html = generate_swagger_html(spec, js, css, "", None, persist_authorization=True)
    # No favicon route exists: without an inline one the browser's request for /favicon.ico is a 404 in
    # the console of every visit.
    return html.replace("<head>", '<head>\n    <link rel="icon" href="data:,">', 1).encode()
