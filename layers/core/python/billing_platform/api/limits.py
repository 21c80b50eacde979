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
import logging
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.api_gateway import ResponseBuilder
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_platform import resources
from billing_platform.api.cors import with_cors
from billing_platform.api.errors import invalid_body_response, json_response

if TYPE_CHECKING:
    # Powertools' OpenAPI models are costly to import and only the /openapi.json document needs them.
    from aws_lambda_powertools.event_handler.openapi.models import OpenAPI

logger = logging.getLogger(__name__)


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
    unhandled error (a 502), so they are refused here as invalid input."""
    body = event.get("body")
    if not body or not isinstance(body, str) or not event.get("isBase64Encoded"):
        return None
    try:
        base64.b64decode(body.encode("ascii"), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError):
        return "it is not UTF-8 encoded"
    return None


class LimitedRestResolver(APIGatewayRestResolver):
    """`APIGatewayRestResolver` that refuses oversized bodies with 413 before routing or validation (so a
    10 MB body is never parsed), and undecodable ones with 422 (the validation error shape). Errors raised
    by routes: api.errors."""

    def __init__(self, *args: Any, max_body_bytes: int = resources.MAX_REQUEST_BODY_BYTES, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_body_bytes = max_body_bytes

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
        return with_cors(event, self._resolve_limited(event, context))

    def _resolve_limited(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        size = body_size(event)
        if size > self.max_body_bytes:
            logger.info("request body too large", extra={"bytes": size, "limit": self.max_body_bytes})
            response = json_response(
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
            response = invalid_body_response(problem)
            return ResponseBuilder[APIGatewayProxyEvent](response).build(APIGatewayProxyEvent(dict(event)))
        return super().resolve(event, context)
