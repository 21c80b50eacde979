"""The OpenAPI document says what the API really answers when it refuses a request.

Powertools documents a 422 with its own `{"detail": [...]}` shape, while `create_app` answers every
error with the platform body `{"code", "message", "details"?}`. This module rewrites the document
accordingly and adds the refusals every route can produce whatever its handler does: 422 (a body that is
not UTF-8 JSON, in the validation shape), 401/403 (routes behind the authorizer or IAM), 413 (body over the
limit) and 429 (throttling), and 400 on the routes that call Stripe (Stripe refused the request, or the
webhook's signature does not verify): the only 400s, none of them input validation. Schema-driven clients
and tests (schemathesis) then check error bodies too.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.openapi.models import OpenAPI, Schema
from aws_lambda_powertools.event_handler.openapi.models import Response as OpenAPIResponse

from billing_platform import resources
from billing_platform.api.schemas import ErrorBody

ERROR_BODY = "ErrorBody"
_ERROR_SCHEMA: dict[str, Any] = ErrorBody.model_json_schema()
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_DESCRIPTIONS = {
    400: "Stripe refused the request the platform made (provider_invalid_request), or the Stripe webhook's "
    "signature does not verify (invalid_signature)",
    401: "No valid credential",
    403: "The credential may not act on this route or tenant",
    413: "The request body is over the size limit",
    422: "The request is not valid: not UTF-8 JSON, or its body, path or query is refused (validation_error)",
    429: "Too many requests; retry after the Retry-After header's seconds",
}


def _auth_by_route() -> dict[tuple[str, str], resources.Auth]:
    return {(route.method.lower(), route.path): route.auth for route, _fn in resources.routes()}


def _stripe_routes() -> set[tuple[str, str]]:
    return {
        (route.method.lower(), route.path)
        for route, fn in resources.routes()
        if resources.DependencyLayer.STRIPE in fn.dependency_layers
    }


def _error_response(status: int) -> OpenAPIResponse:
    return OpenAPIResponse.model_validate(
        {
            "description": _DESCRIPTIONS[status],
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_BODY}"}}},
        }
    )


def document_platform_errors(document: OpenAPI) -> OpenAPI:
    """`document` with the platform error body and the refusals every route can answer (in place)."""
    if document.components is not None and document.components.schemas is not None:
        document.components.schemas[ERROR_BODY] = Schema.model_validate(_ERROR_SCHEMA)
        if "HTTPValidationError" in document.components.schemas:
            # What create_app really answers with a 422, under the name Powertools' references use.
            document.components.schemas["HTTPValidationError"] = Schema.model_validate(
                {**_ERROR_SCHEMA, "title": "HTTPValidationError"}
            )
    elif document.components is not None:
        document.components.schemas = {ERROR_BODY: Schema.model_validate(_ERROR_SCHEMA)}
    auth = _auth_by_route()
    stripe_routes = _stripe_routes()
    for path, item in (document.paths or {}).items():
        for method in _METHODS:
            operation = getattr(item, method, None)
            if operation is None:
                continue
            statuses = [413, 429]
            if operation.requestBody is not None:
                statuses.append(422)
            if (method, path) in stripe_routes:
                statuses += [400, 422]  # 422: also the webhook's verified body that is not an event
            if auth.get((method, path), resources.Auth.PUBLIC) is not resources.Auth.PUBLIC:
                statuses += [401, 403]
            responses = dict(operation.responses or {})
            for status in statuses:
                responses.setdefault(status, _error_response(status))
            operation.responses = responses
    return document
