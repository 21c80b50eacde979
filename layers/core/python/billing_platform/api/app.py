"""Builds the Powertools REST resolver every API function uses, so validation, error bodies and
CORS behave the same on every route.

Also the one place handlers take Powertools' route vocabulary from (`Response`, `content_types`, the
`Path` / `Query` / `Header` parameter markers): imported through the layer, they come after
`billing_platform.deferred_imports` is in place, so a handler never loads the resolvers it does not use.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query

from billing_platform.api.errors import register_error_handlers
from billing_platform.api.limits import LimitedRestResolver

__all__ = ["Header", "Path", "Query", "Response", "content_types", "create_app"]


def create_app(*, title: str) -> APIGatewayRestResolver:
    """A REST resolver with pydantic validation, the body limits (api.limits) and the platform's
    error mapping (api.errors)."""
    app = LimitedRestResolver(enable_validation=True)
    app.configure_openapi(title=title, version="1.0.0")
    register_error_handlers(app)
    return app
