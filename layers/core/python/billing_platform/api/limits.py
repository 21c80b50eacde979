"""Abuse limits every API function gets from `create_app`: a 413 for oversized bodies, decided before
anything parses the body, and 429 (with Retry-After) for rate limiting, including DynamoDB throttling
that outlived boto3's own retries.

Per-tenant request rates are enforced by API Gateway (usage plan per tenant key, stage throttling);
its own 429 answers never reach Lambda. This module covers what only the function can see.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import json
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import ResponseBuilder
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from billing_platform import resources
from billing_platform.errors import RateLimitedError

if TYPE_CHECKING:
    # Powertools' OpenAPI models cost ~50 ms to import and only the /openapi.json document needs them.
    from aws_lambda_powertools.event_handler.openapi.models import OpenAPI

logger = Logger(child=True)

# DynamoDB / AWS error codes that mean "slow down" rather than "broken".
THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "Throttling",
    }
)
DEFAULT_RETRY_AFTER_SECONDS = 1

_F = TypeVar("_F", bound=Callable[..., Any])


def resolve_annotations(func: _F) -> _F:
    """Give `func` a signature with evaluated annotations (Annotated extras kept).

    Powertools evaluates string annotations (`from __future__ import annotations`) in the globals of the
    callable it is given; under a decorator such as `tracer.capture_method` those are the decorator
    module's globals, so `Annotated[...]` aliases and body models stay unresolved and validation breaks
    (a body parameter turns into a required query parameter). Resolving them against the undecorated
    function's own module fixes every route of every handler in one place."""
    original = inspect.unwrap(func)
    try:
        hints = typing.get_type_hints(original, include_extras=True)
    except (NameError, TypeError):
        return func  # left to Powertools, which reports what it cannot resolve
    signature = inspect.signature(original)
    parameters = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()]
    resolved = signature.replace(
        parameters=parameters, return_annotation=hints.get("return", signature.return_annotation)
    )
    try:
        func.__signature__ = resolved  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        return func
    return func


def body_size(event: Mapping[str, Any]) -> int:
    """Size in bytes of the request body as the client sent it (base64 bodies measured decoded)."""
    body = event.get("body")
    if not body:
        return 0
    if not isinstance(body, str):
        return len(json.dumps(body))
    if event.get("isBase64Encoded"):
        stripped = body.rstrip("=")
        return len(stripped) * 3 // 4
    return len(body.encode("utf-8"))


def undecodable_body(event: Mapping[str, Any]) -> str | None:
    """Why the body cannot be read as text, or None. API Gateway hands over bytes that are not UTF-8
    (or have a binary content type) base64-encoded; Powertools would fail decoding them with an
    unhandled error (a 502), so they are refused here as the client's mistake."""
    body = event.get("body")
    if not body or not isinstance(body, str) or not event.get("isBase64Encoded"):
        return None
    try:
        base64.b64decode(body.encode("ascii"), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError):
        return "the request body must be UTF-8 encoded JSON"
    return None


def _json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body, default=str),
        headers=headers or {},
    )


class LimitedRestResolver(APIGatewayRestResolver):
    """`APIGatewayRestResolver` that refuses oversized bodies with 413 before routing or validation (so a
    10 MB body is never parsed) and maps rate limiting to 429 with a Retry-After header."""

    def __init__(self, *args: Any, max_body_bytes: int = resources.MAX_REQUEST_BODY_BYTES, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_body_bytes = max_body_bytes

        @self.exception_handler(RateLimitedError)
        def _rate_limited(exc: RateLimitedError) -> Response[str]:
            retry_after = int(exc.details.get("retry_after_seconds", DEFAULT_RETRY_AFTER_SECONDS))
            logger.info("request rate limited", extra={"code": exc.code})
            return _json_response(429, exc.to_dict(), {"Retry-After": str(retry_after)})

        @self.exception_handler(ClientError)
        def _aws_error(exc: ClientError) -> Response[str]:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in THROTTLING_CODES:
                raise exc
            logger.warning("AWS throttled the request after retries", extra={"aws_error": code})
            error = RateLimitedError(
                "too many requests right now; retry after a short pause",
                details={"retry_after_seconds": DEFAULT_RETRY_AFTER_SECONDS},
            )
            return _json_response(429, error.to_dict(), {"Retry-After": str(DEFAULT_RETRY_AFTER_SECONDS)})

    def get_openapi_schema(self, *args: Any, **kwargs: Any) -> OpenAPI:
        """Powertools' document, with the platform's error body and refusals (api.openapi)."""
        from billing_platform.api.openapi import document_platform_errors

        return document_platform_errors(super().get_openapi_schema(*args, **kwargs))

    def route(self, rule: str, method: Any, *args: Any, **kwargs: Any) -> Callable[[_F], _F]:
        register = super().route(rule, method, *args, **kwargs)

        def register_resolved(func: _F) -> _F:
            return register(resolve_annotations(func))

        return register_resolved

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        size = body_size(event)
        if size > self.max_body_bytes:
            logger.info("request body too large", extra={"bytes": size, "limit": self.max_body_bytes})
            response = _json_response(
                413,
                {
                    "code": "payload_too_large",
                    "message": f"request body is {size} bytes; the limit is {self.max_body_bytes} bytes",
                    "details": {"limit_bytes": self.max_body_bytes, "received_bytes": size},
                },
            )
            return ResponseBuilder[APIGatewayProxyEvent](response).build(APIGatewayProxyEvent(dict(event)))
        problem = undecodable_body(event)
        if problem is not None:
            logger.info("request body not decodable", extra={"reason": problem})
            response = _json_response(400, {"code": "invalid_body", "message": problem})
            return ResponseBuilder[APIGatewayProxyEvent](response).build(APIGatewayProxyEvent(dict(event)))
        return super().resolve(event, context)
