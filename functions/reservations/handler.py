"""Reservation API: POST /v1/entitlements/reservations, POST .../{reservation_id}/settle,
DELETE .../{reservation_id} (cancel), GET .../{reservation_id}; GET /v1/tenants/{tenant_id}/reservations
(the open ones).

A tenant key acts for its own tenant only; a reservation id of another tenant is simply not found (404).
Operators name the tenant (`tenant_id` in the body or query). Bodies are validated before anything is
written; a quota that cannot cover an estimate answers 402, a settle after expiry 409.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_platform.api.app import ApiTag, Path, Query, Response, content_types, create_app, refusal
from billing_platform.api.callers import current_caller, tenant_caller
from billing_platform.container import PerContainer
from billing_platform.errors import UnprocessableError
from billing_platform.ids import TENANT_ID_MAX_LENGTH, TENANT_ID_PATTERN
from billing_platform.observability import count, logger, metrics, tracer
from billing_platform.reservations import Reservation, ReservationService
from billing_platform.reservations.models import RESERVATION_ID_PATTERN
from billing_platform.reservations.schemas import OpenReservationsOut, ReservationOut, ReserveRequest, SettleRequest
from billing_platform.reservations.service import MAX_OPEN_LISTED

app = create_app(title="Billing reservations")
service = PerContainer(ReservationService)

TenantId = Annotated[str, Path(min_length=1, max_length=TENANT_ID_MAX_LENGTH, pattern=TENANT_ID_PATTERN)]
ReservationId = Annotated[str, Path(min_length=36, max_length=36, pattern=RESERVATION_ID_PATTERN)]
TenantQuery = Annotated[str | None, Query(min_length=1, max_length=TENANT_ID_MAX_LENGTH, pattern=TENANT_ID_PATTERN)]


NOT_FOUND = refusal("No such reservation for this tenant (unknown_reservation)")
ALREADY_RESOLVED = refusal(
    "The reservation was already resolved otherwise: cancelled, settled with another quantity, or expired "
    "(reservation_<state>, reservation_expired); details hold its state"
)


def _tenant(named: str | None) -> str:
    """The tenant a request acts for: the key's own, or the one an operator (or the key itself) names."""
    caller = current_caller(app)
    tenant_id = named or caller.tenant_id
    if tenant_id is None:
        raise UnprocessableError("tenant_id is required for an operator", code="missing_tenant")
    caller.require_tenant(tenant_id)
    logger.append_keys(tenant_id=tenant_id)
    return tenant_id


def _out(reservation: Reservation, replayed: bool) -> ReservationOut:
    return ReservationOut.model_validate({**reservation.to_dict(), "replayed": replayed})


@app.post(
    "/v1/entitlements/reservations",
    operation_id="reserve",
    summary="Hold an estimate of quota until the work's actual quantity is known",
    tags=[ApiTag.RESERVATIONS],
    responses={
        201: {"description": "The reservation, held"},
        402: refusal(
            "The quota and the live grants cannot cover the estimate (quota_exceeded ...), or its cost would "
            "pass a hard spend cap (spend_cap_reached)"
        ),
    },
)
@tracer.capture_method(capture_response=False)
def reserve(body: ReserveRequest) -> Response[ReservationOut]:
    tenant_id = _tenant(body.tenant_id)
    caller = current_caller(app)
    reservation, replayed = service().reserve(
        tenant_id,
        body.resource_type,
        body.estimate,
        ttl=timedelta(seconds=body.ttl_seconds),
        idempotency_key=body.idempotency_key,
        entity_id=body.entity_id or (caller.entity_id if caller.tenant_id == tenant_id else None),
    )
    count("QuotaReserved", resource_type=body.resource_type)
    return Response(
        status_code=200 if replayed else 201,
        content_type=content_types.APPLICATION_JSON,
        body=_out(reservation, replayed),
    )


@app.post(
    "/v1/entitlements/reservations/<reservation_id>/settle",
    operation_id="settle",
    summary="Settle a reservation with the actual quantity: the rest is given back, an extra is taken",
    tags=[ApiTag.RESERVATIONS],
    responses={200: {"description": "The reservation, settled"}, 404: NOT_FOUND, 409: ALREADY_RESOLVED},
)
@tracer.capture_method(capture_response=False)
def settle(reservation_id: ReservationId, body: SettleRequest) -> ReservationOut:
    reservation, replayed = service().settle(_tenant(body.tenant_id), reservation_id, body.quantity)
    return _out(reservation, replayed)


@app.delete(
    "/v1/entitlements/reservations/<reservation_id>",
    operation_id="cancelReservation",
    summary="Cancel a reservation: its whole estimate is given back",
    tags=[ApiTag.RESERVATIONS],
    responses={200: {"description": "The reservation, cancelled"}, 404: NOT_FOUND, 409: ALREADY_RESOLVED},
)
def cancel(reservation_id: ReservationId, tenant_id: TenantQuery = None) -> ReservationOut:
    reservation, replayed = service().cancel(_tenant(tenant_id), reservation_id)
    return _out(reservation, replayed)


@app.get(
    "/v1/entitlements/reservations/<reservation_id>",
    operation_id="getReservation",
    summary="Get a reservation and its state",
    tags=[ApiTag.RESERVATIONS],
    responses={200: {"description": "The reservation"}, 404: NOT_FOUND},
)
def get_reservation(reservation_id: ReservationId, tenant_id: TenantQuery = None) -> ReservationOut:
    return _out(service().get(_tenant(tenant_id), reservation_id), False)


@app.get(
    "/v1/tenants/<tenant_id>/reservations",
    summary="List the tenant's open (held) reservations",
    operation_id="listOpenReservations",
    tags=[ApiTag.RESERVATIONS],
)
def list_open_reservations(tenant_id: TenantId) -> OpenReservationsOut:
    tenant_caller(app, tenant_id)
    held = service().open(tenant_id)
    return OpenReservationsOut.model_validate(
        {"tenant_id": tenant_id, "items": [_out(r, False) for r in held], "truncated": len(held) >= MAX_OPEN_LISTED}
    )


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
