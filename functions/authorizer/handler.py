"""Lambda REQUEST authorizer for tenant routes: `Authorization: Bearer <tenant API key>` -> IAM policy
with the tenant's identity in the context (see billing_platform.auth.authorizer)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_platform.auth.authorizer import TenantKeyAuthorizer
from billing_platform.container import PerContainer
from billing_platform.errors import UnauthorizedError
from billing_platform.observability import logger, metrics, tracer

authorizer = PerContainer(TenantKeyAuthorizer)


# log_event stays off: the event carries the caller's key. clear_state: the tenant id appended for one
# request must not label the log lines of the next (another caller's denied request, say).
@logger.inject_lambda_context(log_event=False, correlation_id_path="requestContext.requestId", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@event_source(data_class=APIGatewayAuthorizerRequestEvent)
def handler(event: APIGatewayAuthorizerRequestEvent, context: LambdaContext) -> dict[str, Any]:
    try:
        policy = authorizer().authorize(event)
    except UnauthorizedError:
        metrics.add_metric(name="AuthorizerDenied", unit="Count", value=1)
        raise
    metrics.add_metric(name="AuthorizerAllowed", unit="Count", value=1)
    logger.append_keys(tenant_id=policy.get("context", {}).get("tenant_id"))
    return policy
