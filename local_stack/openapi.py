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


def merged_openapi(runtime: FunctionRuntime, server_url: str) -> dict[str, Any]:
    """Paths and components of every API function whose handler module has an `app` resolver.
    Placeholders without one are skipped (their routes appear once their owners land them)."""
    from aws_lambda_powertools.event_handler.openapi.models import Server

    merge = OpenAPIMerge(
        title="Billing platform (local)",
        version="1.0.0",
        servers=[Server(url=server_url)],
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


def swagger_html(spec_url: str) -> bytes:
    from aws_lambda_powertools.event_handler.openapi import swagger_ui
    from aws_lambda_powertools.event_handler.openapi.swagger_ui.html import generate_swagger_html

    folder = Path(swagger_ui.__file__).parent
    js = (folder / "swagger-ui-bundle.min.js").read_text(encoding="utf-8")
    css = (folder / "swagger-ui.min.css").read_text(encoding="utf-8")
    return generate_swagger_html(spec_url, js, css, "", None).encode()
