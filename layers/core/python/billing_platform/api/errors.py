"""The API's error mapping, in one place: whatever a route lets through becomes one response in the
platform's error body shape, `{"code", "message", "details"?}`.

- `BillingError` (billing_platform.errors, and the domain errors derived from it) -> its `http_status`;
  `RateLimitedError` (429) adds `Retry-After`.
- botocore `ClientError` that is transient (DynamoDB throttling, or a transaction cancelled for a
  throttled or contended item, after every retry; billing_platform.conditions) -> 429 `rate_limited`
  with `Retry-After`. Any other `ClientError` is re-raised: a 500 that is ours to investigate.
- Powertools' `RequestValidationError` (a body, path or query the route's types refuse, a body that is not
  JSON) -> 422 `validation_error`, `details` a list of `{"loc", "msg", "type"}`: the same status and shape
  as the layer's own `ValidationError`s.
Oversized bodies (413) and bodies that are not UTF-8 (422, the shape above) are answered before routing
(billing_platform.api.limits).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from botocore.exceptions import ClientError

from billing_platform.conditions import error_code, transient
from billing_platform.errors import BillingError, RateLimitedError

logger = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER_SECONDS = 1


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response[str]:
    """A JSON response (Decimals and datetimes as strings)."""
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body, default=str),
        headers=headers or {},
    )


def error_response(status: int, code: str, message: str, details: Any = None) -> Response[str]:
    """The one error body shape of the API: `{"code", "message", "details"?}`."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return json_response(status, body)


def invalid_body_response(problem: str) -> Response[str]:
    """422 for a body that cannot be read as JSON at all (not UTF-8, not JSON), in the validation shape."""
    message = f"body is not valid JSON: {problem}" if problem else "body is not valid JSON"
    return error_response(422, "validation_error", message, [{"loc": ["body"], "msg": message, "type": "json_invalid"}])


def _readable(errors: list[dict[str, Any]]) -> str:
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def register_error_handlers(app: APIGatewayRestResolver) -> None:
    """Install the mapping above on a resolver (`create_app` does, for every API function)."""

    @app.exception_handler(BillingError)
    def _billing_error(exc: BillingError) -> Response[str]:
        # 5xx is ours to investigate; 4xx is the caller's, logged at info without the body.
        if exc.http_status >= 500:
            logger.error("request failed", extra={"code": exc.code, "error": exc.message})
        else:
            logger.info("request rejected", extra={"code": exc.code, "status": exc.http_status})
        headers = None
        if exc.http_status == 429:
            headers = {"Retry-After": str(int(exc.details.get("retry_after_seconds", DEFAULT_RETRY_AFTER_SECONDS)))}
        return json_response(exc.http_status, exc.to_dict(), headers)

    @app.exception_handler(RateLimitedError)
    def _rate_limited(exc: RateLimitedError) -> Response[str]:
        retry_after = int(exc.details.get("retry_after_seconds", DEFAULT_RETRY_AFTER_SECONDS))
        logger.info("request rate limited", extra={"code": exc.code})
        return json_response(429, exc.to_dict(), {"Retry-After": str(retry_after)})

    @app.exception_handler(ClientError)
    def _aws_error(exc: ClientError) -> Response[str]:
        # Throttled after every retry: the caller may send the same request again shortly.
        if not transient(exc):
            raise exc
        logger.warning("AWS throttled the request after retries", extra={"aws_error": error_code(exc)})
        error = RateLimitedError(
            "too many requests right now; retry after a short pause",
            details={"retry_after_seconds": DEFAULT_RETRY_AFTER_SECONDS},
        )
        return json_response(429, error.to_dict(), {"Retry-After": str(DEFAULT_RETRY_AFTER_SECONDS)})

    @app.exception_handler(RequestValidationError)
    def _invalid_request(exc: RequestValidationError) -> Response[str]:
        undecodable = [err for err in exc.errors() if err.get("type") == "json_invalid"]
        if undecodable:
            # Powertools reports a JSON decode error at ("body", <character offset>) as "JSON decode error".
            ctx = undecodable[0].get("ctx") or {}
            where = undecodable[0].get("loc", ("body", 0))[-1]
            return invalid_body_response(f"{ctx.get('error', 'cannot be decoded')} at character {where}")
        errors = [{k: v for k, v in dict(err).items() if k in ("loc", "msg", "type")} for err in exc.errors()]
        return error_response(422, "validation_error", _readable(errors) or "invalid request", errors)
