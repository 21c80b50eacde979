"""POST /v1/webhooks/stripe: Stripe's webhook target.

The signature is checked on the raw body (base64-decoded when API Gateway encoded it) before anything
is parsed; a bad or missing signature is a 400 (Stripe's convention: not input validation, the sender is
not known to be Stripe) and changes nothing; a verified body that is not an event is a 422. A verified event goes to the
layer's `WebhookProcessor` (exactly once in effect, ordering, entitlements). Any failure while applying
it is a 5xx, so Stripe delivers the event again.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_platform.api.app import ApiTag, Response, content_types, create_app
from billing_platform.api.errors import error_response
from billing_platform.container import PerContainer
from billing_platform.errors import BillingProviderError, CatalogError, EventInProgress, TopupTenantUnknown
from billing_platform.observability import count, logger, metrics, tracer
from billing_platform.providers.factory import ProviderOnCall
from billing_platform.providers.stripe_signature import verify_webhook, webhook_secret
from billing_platform.subscriptions.schemas import StripeEventReceivedOut
from billing_platform.subscriptions.webhooks import WebhookProcessor, parse_event

app = create_app(title="Stripe webhook target")

# One processor per container. Its provider is looked up at each call: the signature check needs no SDK,
# and the Stripe SDK is imported by the first event that calls Stripe (invoice and checkout events
# re-fetch), not by every cold start.
processor = PerContainer(lambda: WebhookProcessor(ProviderOnCall()))


@app.post(
    "/v1/webhooks/stripe",
    operation_id="receiveStripeEvent",
    summary="Apply a Stripe webhook event (called by Stripe, signed)",
    tags=[ApiTag.STRIPE],
    responses={200: {"description": "Event received (applied or ignored)"}},
)
@tracer.capture_method(capture_response=False)
def receive() -> StripeEventReceivedOut:
    raw = app.current_event.decoded_body or ""
    signature = app.current_event.headers.get("Stripe-Signature")
    verify_webhook(raw, signature, webhook_secret())
    event = parse_event(raw)
    logger.set_correlation_id(event.id)
    outcome = processor().process(event)
    if outcome.tenant_id:
        logger.append_keys(tenant_id=outcome.tenant_id)
    count("StripeEventReceived", event_type=event.type, outcome=outcome.outcome)
    return StripeEventReceivedOut(**outcome.model_dump())


@app.exception_handler(EventInProgress)
def _in_progress(exc: EventInProgress) -> Response[str]:
    # Another delivery of this event is being applied right now: Stripe retries later.
    return error_response(409, "event_in_progress", f"event {exc} is being processed by another delivery")


@app.exception_handler(BillingProviderError)
def _provider_failed(exc: BillingProviderError) -> Response[str]:
    # Whatever Stripe answered our re-fetch, the event is not applied: 5xx so that Stripe retries.
    logger.error("provider call failed while applying a stripe event", extra={"code": exc.code})
    status = exc.http_status if exc.http_status >= 500 else 503
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(exc.to_dict(), default=str)
    )


@app.exception_handler(TopupTenantUnknown)
def _topup_tenant(exc: TopupTenantUnknown) -> Response[str]:
    # A paid top-up for a customer not bound to a tenant yet (the binding event is still on its way):
    # never dropped, Stripe delivers it again.
    logger.warning("top-up of a customer with no tenant yet; Stripe will retry", extra={"source_id": str(exc)})
    return error_response(503, "topup_tenant_unknown", f"no tenant for the customer of {exc} yet; retry later")


@app.exception_handler(CatalogError)
def _catalog(exc: CatalogError) -> Response[str]:
    # Stripe holds a price the deployed catalog does not know: ours to fix, and Stripe's retry after
    # the fix applies the event.
    logger.error("stripe event names a price outside the plan catalog", extra={"error": exc.message})
    return error_response(500, exc.code, exc.message)


@app.exception_handler(Exception)
def _internal(exc: Exception) -> Response[str]:
    logger.exception("stripe event not applied")
    return error_response(500, "internal_error", "the event could not be applied; Stripe will retry")


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
