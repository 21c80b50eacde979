"""POST /v1/usage: a batch of usage records from callers outside AWS onto the usage queue (202)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_platform.api.app import ApiTag, Header, Response, content_types, create_app
from billing_platform.api.callers import current_caller
from billing_platform.container import PerContainer
from billing_platform.observability import logger, metrics, tracer
from billing_platform.usage.ingest import UsageIngestService
from billing_platform.usage.schemas import IngestOut, IngestRequest

app = create_app(title="Usage ingest")
service = PerContainer(UsageIngestService)

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=128)]


@app.post(
    "/v1/usage",
    status_code=202,
    operation_id="ingestUsage",
    summary="Send a batch of usage records to be metered",
    tags=[ApiTag.USAGE],
    responses={202: {"description": "The valid records are queued; each refused one is listed with its error"}},
)
@tracer.capture_method(capture_response=False)
def ingest(body: IngestRequest, idempotency_key: IdempotencyKey = None) -> Response[IngestOut]:
    caller = current_caller(app)
    result = service().ingest(caller, body.records, idempotency_key=idempotency_key)
    metrics.add_metric(name="UsageRecordsAccepted", unit="Count", value=len(result.record_ids))
    if result.errors:
        metrics.add_metric(name="UsageRecordsRejected", unit="Count", value=len(result.errors))
        logger.info("usage records rejected", extra={"rejected": len(result.errors)})
    return Response(
        status_code=202, content_type=content_types.APPLICATION_JSON, body=IngestOut.model_validate(result.to_dict())
    )


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
