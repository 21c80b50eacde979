"""Builds the Powertools REST resolver every API function uses, so validation, error bodies and
CORS behave the same on every route."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from billing_platform.api.errors import register_error_handlers
from billing_platform.api.limits import LimitedRestResolver


def create_app(*, title: str) -> APIGatewayRestResolver:
    """A REST resolver with pydantic validation, the body limits (api.limits) and the platform's
    error mapping (api.errors)."""
    app = LimitedRestResolver(enable_validation=True)
    app.configure_openapi(title=title, version="1.0.0")
    register_error_handlers(app)
    return app
