"""Builds the Powertools REST resolver every API function uses, so validation, error bodies and
CORS behave the same on every route."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from billing_platform.api.limits import LimitedRestResolver
from billing_platform.errors import BillingError

logger = Logger(child=True)


def error_response(status: int, code: str, message: str, details: Any = None) -> Response[str]:
    """The one error body shape of the API: `{"code", "message", "details"?}`."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=_dumps(body))


def _dumps(body: Any) -> str:
    return json.dumps(body, default=str)


def _readable(errors: list[dict[str, Any]]) -> str:
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def create_app(*, title: str) -> APIGatewayRestResolver:
    """A REST resolver with pydantic validation and the platform's error mapping (one place)."""
    # 413 for oversized bodies and 429 mapping: billing_platform.api.limits.
    app = LimitedRestResolver(enable_validation=True)
    app.configure_openapi(title=title, version="1.0.0")

    @app.exception_handler(BillingError)
    def _billing_error(exc: BillingError) -> Response[str]:
        # 5xx is ours to investigate; 4xx is the caller's, logged at info without the body.
        if exc.http_status >= 500:
            logger.error("request failed", extra={"code": exc.code, "error": exc.message})
        else:
            logger.info("request rejected", extra={"code": exc.code, "status": exc.http_status})
        return Response(
            status_code=exc.http_status,
            content_type=content_types.APPLICATION_JSON,
            body=_dumps(exc.to_dict()),
        )

    @app.exception_handler(RequestValidationError)
    def _invalid_request(exc: RequestValidationError) -> Response[str]:
        errors = [{k: v for k, v in dict(err).items() if k in ("loc", "msg", "type")} for err in exc.errors()]
        return error_response(422, "validation_error", _readable(errors) or "invalid request", errors)

    return app
