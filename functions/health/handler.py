"""GET /health: liveness of the API path (API Gateway -> Lambda -> layer import)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_platform.api.app import ApiTag, create_app
from billing_platform.api.schemas import HealthOut
from billing_platform.observability import logger, tracer

app = create_app(title="Billing health")


@app.get("/health", operation_id="getHealth", summary="Check that the API answers", tags=[ApiTag.HEALTH])
def health() -> HealthOut:
    return HealthOut(status="ok")


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
