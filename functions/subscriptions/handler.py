"""Operator API for billing customers and subscriptions:
POST /v1/customers, GET /v1/customers/{customer_id}, POST /v1/subscriptions,
GET/PATCH/DELETE /v1/subscriptions/{subscription_id} (DELETE ?immediate=true|false).

An optional `Idempotency-Key` request header is passed on to Stripe, so a client retrying a POST gets
the first answer instead of a second customer or subscription."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_platform.api.app import ApiTag, Path, Query, Response, content_types, create_app
from billing_platform.api.callers import operator_actor
from billing_platform.container import PerContainer
from billing_platform.observability import logger, metrics, tracer
from billing_platform.providers.factory import get_billing_provider
from billing_platform.subscriptions.schemas import (
    CreateCustomerRequest,
    CreateSubscriptionRequest,
    CustomerOut,
    SubscriptionOut,
    UpdateSubscriptionRequest,
)
from billing_platform.subscriptions.service import SubscriptionService

app = create_app(title="Billing customers and subscriptions")

CustomerId = Annotated[str, Path(min_length=5, max_length=255, pattern=r"^cus_[A-Za-z0-9]+$")]
SubscriptionId = Annotated[str, Path(min_length=5, max_length=255, pattern=r"^sub_[A-Za-z0-9]+$")]
Immediate = Annotated[bool, Query(description="true: cancel now; false (default): at the end of the period")]

CreatedT = TypeVar("CreatedT", CustomerOut, SubscriptionOut)

# One service per container, rebuilt only if the process-wide provider was replaced (the local stack
# installs its webhook-sending provider after the handlers are imported).
service = PerContainer(
    lambda: SubscriptionService(get_billing_provider().sync), depends_on=lambda: get_billing_provider().sync
)


def _created(body: CreatedT) -> Response[CreatedT]:
    # Response[<model>] keeps the model as the 201 schema in the generated OpenAPI document.
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=body)


@app.post(
    "/v1/customers",
    operation_id="createCustomer",
    summary="Create the Stripe customer that pays for a tenant",
    tags=[ApiTag.CUSTOMERS],
    responses={201: {"description": "The billing customer, bound to the tenant"}},
)
@tracer.capture_method(capture_response=False)
def create_customer(body: CreateCustomerRequest) -> Response[CustomerOut]:
    actor = operator_actor(app)
    logger.append_keys(tenant_id=body.tenant_id)
    customer = service().create_customer(body, actor)
    metrics.add_metric(name="CustomerCreated", unit="Count", value=1)
    logger.info("billing customer created", extra={"customer_id": customer.id})
    return _created(customer)


@app.get(
    "/v1/customers/<customer_id>",
    operation_id="getCustomer",
    summary="Get a billing customer",
    tags=[ApiTag.CUSTOMERS],
)
@tracer.capture_method(capture_response=False)
def get_customer(customer_id: CustomerId) -> CustomerOut:
    operator_actor(app)
    return service().get_customer(customer_id)


@app.post(
    "/v1/subscriptions",
    operation_id="createSubscription",
    summary="Subscribe a tenant to a catalog price",
    tags=[ApiTag.SUBSCRIPTIONS],
    responses={201: {"description": "The subscription as Stripe created it"}},
)
@tracer.capture_method(capture_response=False)
def create_subscription(body: CreateSubscriptionRequest) -> Response[SubscriptionOut]:
    actor = operator_actor(app)
    logger.append_keys(tenant_id=body.tenant_id)
    sub = service().create_subscription(body, actor)
    metrics.add_metric(name="SubscriptionCreated", unit="Count", value=1)
    logger.info("subscription created", extra={"subscription_id": sub.id, "plan_id": sub.plan_id})
    return _created(sub)


@app.get(
    "/v1/subscriptions/<subscription_id>",
    operation_id="getSubscription",
    summary="Get a subscription",
    tags=[ApiTag.SUBSCRIPTIONS],
)
@tracer.capture_method(capture_response=False)
def get_subscription(subscription_id: SubscriptionId) -> SubscriptionOut:
    operator_actor(app)
    return service().get_subscription(subscription_id)


@app.patch(
    "/v1/subscriptions/<subscription_id>",
    operation_id="updateSubscription",
    summary="Move a subscription to another price (prorated)",
    tags=[ApiTag.SUBSCRIPTIONS],
)
@tracer.capture_method(capture_response=False)
def change_price(subscription_id: SubscriptionId, body: UpdateSubscriptionRequest) -> SubscriptionOut:
    actor = operator_actor(app)
    sub = service().change_price(subscription_id, body, actor)
    logger.info("subscription price changed", extra={"subscription_id": sub.id, "plan_id": sub.plan_id})
    return sub


@app.delete(
    "/v1/subscriptions/<subscription_id>",
    operation_id="cancelSubscription",
    summary="Cancel a subscription now or at the end of its period",
    tags=[ApiTag.SUBSCRIPTIONS],
)
@tracer.capture_method(capture_response=False)
def cancel_subscription(subscription_id: SubscriptionId, immediate: Immediate = False) -> SubscriptionOut:
    actor = operator_actor(app)
    sub = service().cancel(subscription_id, immediate=immediate, actor=actor)
    logger.info("subscription canceled", extra={"subscription_id": sub.id, "immediate": immediate})
    return sub


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
