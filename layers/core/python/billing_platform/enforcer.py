"""The entitlement library for other Lambdas and asyncio services: `EntitlementEnforcer`, the
`require_entitlement` decorator, `check_entitlement_or_raise` and the FastAPI dependency
`get_entitlement_enforcer`.

The library's one convention for blocking and async callers (billing provider, `EntitlementEnforcer`,
`UsageTracker`, `UsageAggregator` all follow it):

* the class the design document names is the **async face**: ``await enforcer.check_and_record(...)``;
* ``obj.sync`` is the **blocking face**, with the same method names, parameters and answers:
  ``enforcer.sync.check_and_record(...)``. Lambda handlers and the CLI use it (no event loop);
* the blocking face holds the one implementation; each async method is its blocking twin run through
  `billing_platform.offload.run_blocking` (a bounded worker pool), so the event loop never blocks on
  boto3 and there is one code path to test;
* both faces share state (here one `EntitlementService`, hence one plan cache); the sync class is
  named `Sync<Name>` (`SyncEntitlementEnforcer`).

A new method is written once on the sync class and given a three-line async twin:

    async def reserve(self, ...) -> Reservation:
        return await run_blocking(self._sync.reserve, ...)
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, ClassVar, ParamSpec, Protocol, TypeAlias, TypeVar, cast
from uuid import UUID

from billing_platform.container import PerContainer
from billing_platform.entitlements.models import EntitlementCheck
from billing_platform.entitlements.service import EntitlementService
from billing_platform.errors import EntitlementEnforcementError, QuotaExceededError, UnprocessableError
from billing_platform.ids import TenantIdLike, tenant_id_str
from billing_platform.offload import run_blocking

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    # Imported where used: a caller that never reserves does not load them.
    from billing_platform.reservations.handles import ReservationHold, SyncReservationHold
    from billing_platform.reservations.models import Reservation
    from billing_platform.reservations.service import ReservationService

P = ParamSpec("P")
R = TypeVar("R")
QuantityLike = Decimal | int | str
ReservationLike: TypeAlias = "SyncReservationHold | Reservation"
TtlLike = timedelta | int  # an int is seconds; None: reservations.models.DEFAULT_TTL


class _Resolver(Protocol):
    """A Powertools resolver (only its current event is read)."""

    @property
    def current_event(self) -> Any: ...


def check_entitlement_or_raise(check: EntitlementCheck) -> EntitlementCheck:
    """Return `check` when allowed; raise `QuotaExceededError` (an `EntitlementEnforcementError`,
    answered with 402 by every `create_app` API) when not.

    In a process that runs FastAPI the error raised is also a `fastapi.HTTPException` (402, ``detail`` =
    the body the HTTP API answers with), so an endpoint needs no handler of its own; it stays a
    `QuotaExceededError` for ``except`` clauses. FastAPI is never imported here: a Lambda pays nothing."""
    if not check.allowed:
        if "fastapi" in sys.modules:
            from billing_platform.enforcer_fastapi import quota_http_exception

            raise quota_http_exception(check)
        raise QuotaExceededError(check)
    return check


def to_quantity(value: QuantityLike) -> Decimal:
    """Accept Decimal, int or a decimal string; floats are refused (no floats in quota math)."""
    if isinstance(value, bool | float):
        raise UnprocessableError("quantity must be a Decimal, an int or a decimal string", code="invalid_quantity")
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise UnprocessableError(f"quantity {value!r} is not a number", code="invalid_quantity") from None


class SyncEntitlementEnforcer:
    """The blocking face of `EntitlementEnforcer` (``enforcer.sync``): what Lambda handlers and the CLI
    call, with no event loop. Same method names and answers as the async face.

    `check_and_record` is one DynamoDB request on the hot path; plan and feature look-ups are cached
    for a TTL, remaining quota never is. A denied check records nothing."""

    def __init__(self, service: EntitlementService | None = None) -> None:
        self._service = service
        self._reservations: ReservationService | None = None
        self._reservations_over: EntitlementService | None = None

    @property
    def service(self) -> EntitlementService:
        # Without a service of its own an enforcer uses the process-wide one (one plan cache per process).
        return self._service or shared_service()

    @property
    def reservations(self) -> ReservationService:
        """The reservation use cases, over this enforcer's entitlement service (one plan cache)."""
        service = self.service
        # Rebuilt when the process-wide service is replaced (tests switching tables), never per call.
        if self._reservations is None or self._reservations_over is not service:
            from billing_platform.reservations.service import ReservationService

            self._reservations, self._reservations_over = ReservationService(entitlements=service), service
        return self._reservations

    def check_and_record(
        self,
        tenant_id: TenantIdLike,
        resource_type: str,
        quantity: QuantityLike = Decimal(1),
        *,
        idempotency_key: str | None = None,
        entity: str | None = None,
    ) -> EntitlementCheck:
        """Consume `quantity` if the tenant is entitled to it; the answer says whether it was. With `entity`
        (a user, team or key id of the tenant), counted at every limited level from it up, or nowhere."""
        return self.service.consume(
            tenant_id_str(tenant_id),
            resource_type,
            to_quantity(quantity),
            idempotency_key=idempotency_key,
            entity_id=entity,
        )

    def check(
        self,
        tenant_id: TenantIdLike,
        resource_type: str,
        quantity: QuantityLike = Decimal(1),
        *,
        entity: str | None = None,
    ) -> EntitlementCheck:
        """Would `quantity` be granted now (at every level of `entity` too)? Consumes nothing."""
        return self.service.check(tenant_id_str(tenant_id), resource_type, to_quantity(quantity), entity_id=entity)

    def release(self, check: EntitlementCheck) -> EntitlementCheck:
        """Give back what a granted `check` consumed (its own shards, its own period, once for an
        idempotent consume). A denied check took nothing and gives nothing back."""
        if not check.allowed or (not check.shards_used and check.idempotency_key is None):
            return check
        if check.entity_id is not None:
            return self.service.release(
                check.tenant_id,
                check.resource_type,
                None if check.idempotency_key else check.quantity,
                idempotency_key=check.idempotency_key,
                entity_id=check.entity_id,
            )
        if check.idempotency_key is not None:
            return self.service.release(check.tenant_id, check.resource_type, idempotency_key=check.idempotency_key)
        return self.service.release_taken(
            check.tenant_id, check.resource_type, check.shards_used, period_end=check.resets_at
        )

    def reserve(
        self,
        tenant_id: TenantIdLike,
        resource_type: str,
        estimate: QuantityLike,
        *,
        ttl: TtlLike | None = None,
        idempotency_key: str | None = None,
        entity: str | None = None,
    ) -> SyncReservationHold:
        """Hold `estimate` for work priced afterwards (one request on the hot path). ``with`` the answer to
        settle it when the block ends (`reservations.handles`). Raises `QuotaExceededError` (402) when the
        quota cannot cover it; an unresolved hold is given back once `ttl` has passed. With `entity`, held
        (and settled) at every limited level of that entity too."""
        from billing_platform.reservations.handles import SyncReservationHold
        from billing_platform.reservations.models import DEFAULT_TTL

        reservation, _replayed = self.reservations.reserve(
            tenant_id_str(tenant_id),
            resource_type,
            to_quantity(estimate),
            ttl=DEFAULT_TTL if ttl is None else ttl if isinstance(ttl, timedelta) else timedelta(seconds=ttl),
            idempotency_key=idempotency_key,
            entity_id=entity,
        )
        return SyncReservationHold(reservation, self.settle, self.cancel)

    def settle(self, reservation: ReservationLike, actual: QuantityLike) -> Reservation:
        """Charge `actual`: the rest of the estimate goes back, or the extra is taken (a hard quota takes
        what it has; `uncovered` says what it could not). A repeat answers the same; after expiry or a
        cancel it raises `ConflictError` (409) and takes nothing."""
        held = _held(reservation)
        settled, _replayed = self.reservations.settle(held.tenant_id, held.reservation_id, to_quantity(actual))
        return settled

    def cancel(self, reservation: ReservationLike) -> Reservation:
        """Give the whole estimate back (once; a repeat answers the same)."""
        held = _held(reservation)
        cancelled, _replayed = self.reservations.cancel(held.tenant_id, held.reservation_id)
        return cancelled

    def has_feature(self, tenant_id: TenantIdLike, feature: str) -> bool:
        """Whether the tenant's plan includes `feature` (cached with the plan)."""
        return self.service.has_feature(tenant_id_str(tenant_id), feature)

    def require_feature(self, tenant_id: TenantIdLike, feature: str) -> None:
        """Raise `EntitlementEnforcementError` (402) unless the tenant's plan includes `feature`."""
        if not self.has_feature(tenant_id, feature):
            raise EntitlementEnforcementError(
                f"feature {feature!r} is not included in the plan",
                code="feature_not_in_plan",
                details={"feature": feature},
            )


# The process-wide `EntitlementService`, created on first use (importing this module costs no client);
# tests `reset()` it when they switch tables and endpoints.
shared_service = PerContainer(EntitlementService)


def _held(reservation: ReservationLike) -> Reservation:
    from billing_platform.reservations.handles import SyncReservationHold

    return reservation.reservation if isinstance(reservation, SyncReservationHold) else reservation


class EntitlementEnforcer:
    """Checks and records quota use for a tenant: ``await enforcer.check_and_record(...)``.

    The async face of `SyncEntitlementEnforcer` (``enforcer.sync``, the blocking face for Lambda): each
    method runs its blocking twin on the library's worker pool (`billing_platform.offload`), so the
    event loop never waits for DynamoDB. Both faces share one service, hence one plan cache.
    Tenant ids may be strings or `uuid.UUID`s."""

    # FastAPI's bare `Depends()` (the document's ``enforcer: EntitlementEnforcer = Depends()``) builds the
    # dependency by calling the class with the parameters its signature shows. Shown: none, so FastAPI
    # asks the request for nothing and each request gets `EntitlementEnforcer()`: a light object over
    # the process-wide service. `service` stays a real (hidden) parameter for tests and wiring.
    __signature__: ClassVar[inspect.Signature] = inspect.Signature()

    def __init__(self, service: EntitlementService | None = None) -> None:
        self._sync = SyncEntitlementEnforcer(service)

    @property
    def sync(self) -> SyncEntitlementEnforcer:
        """The blocking face, same methods (Lambda handlers, the CLI, threads)."""
        return self._sync

    @property
    def service(self) -> EntitlementService:
        return self._sync.service

    async def check_and_record(
        self,
        tenant_id: TenantIdLike,
        resource_type: str,
        quantity: QuantityLike = Decimal(1),
        *,
        idempotency_key: str | None = None,
        entity: str | None = None,
    ) -> EntitlementCheck:
        """Consume `quantity` if the tenant is entitled to it (at every level of `entity` too)."""
        return await run_blocking(
            self._sync.check_and_record,
            tenant_id,
            resource_type,
            quantity,
            idempotency_key=idempotency_key,
            entity=entity,
        )

    async def check(
        self,
        tenant_id: TenantIdLike,
        resource_type: str,
        quantity: QuantityLike = Decimal(1),
        *,
        entity: str | None = None,
    ) -> EntitlementCheck:
        """Would `quantity` be granted now (at every level of `entity` too)? Consumes nothing."""
        return await run_blocking(self._sync.check, tenant_id, resource_type, quantity, entity=entity)

    async def release(self, check: EntitlementCheck) -> EntitlementCheck:
        """Give back what a granted `check` consumed (see `SyncEntitlementEnforcer.release`)."""
        return await run_blocking(self._sync.release, check)

    def reserve(
        self,
        tenant_id: TenantIdLike,
        resource_type: str,
        estimate: QuantityLike,
        *,
        ttl: TtlLike | None = None,
        idempotency_key: str | None = None,
        entity: str | None = None,
    ) -> ReservationHold:
        """Hold `estimate` (see `SyncEntitlementEnforcer.reserve`): ``async with enforcer.reserve(...) as r``
        settles it when the block ends; ``r = await enforcer.reserve(...)`` just holds it."""
        from billing_platform.reservations.handles import ReservationHold

        return ReservationHold(
            functools.partial(
                self._sync.reserve,
                tenant_id,
                resource_type,
                estimate,
                ttl=ttl,
                idempotency_key=idempotency_key,
                entity=entity,
            )
        )

    async def settle(self, reservation: ReservationLike, actual: QuantityLike) -> Reservation:
        """Charge `actual` for the reservation (see `SyncEntitlementEnforcer.settle`)."""
        return await run_blocking(self._sync.settle, reservation, actual)

    async def cancel(self, reservation: ReservationLike) -> Reservation:
        """Give the whole estimate back (see `SyncEntitlementEnforcer.cancel`)."""
        return await run_blocking(self._sync.cancel, reservation)

    async def has_feature(self, tenant_id: TenantIdLike, feature: str) -> bool:
        """Whether the tenant's plan includes `feature` (cached with the plan)."""
        return await run_blocking(self._sync.has_feature, tenant_id, feature)

    async def require_feature(self, tenant_id: TenantIdLike, feature: str) -> None:
        """Raise `EntitlementEnforcementError` (402) unless the tenant's plan includes `feature`."""
        await run_blocking(self._sync.require_feature, tenant_id, feature)


_default_enforcer = EntitlementEnforcer()


def default_enforcer() -> EntitlementEnforcer:
    """The process-wide enforcer (`require_entitlement` uses it unless given one); ``.sync`` for Lambda."""
    return _default_enforcer


async def get_entitlement_enforcer() -> EntitlementEnforcer:
    """FastAPI dependency: ``enforcer: EntitlementEnforcer = Depends(get_entitlement_enforcer)`` gives the
    process-wide enforcer (one plan cache per process). Needs nothing from FastAPI itself."""
    return _default_enforcer


def tenant_id_from_call(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
    """Where a decorated function's tenant is: a `tenant_id` argument (FastAPI endpoints, Powertools
    routes; a `uuid.UUID` becomes its canonical string), else the Lambda event's authorizer context
    (the authenticated tenant), path parameters or top-level field."""
    if kwargs.get("tenant_id"):
        value = kwargs["tenant_id"]
        return tenant_id_str(value) if isinstance(value, str | UUID) else str(value)
    event = args[0] if args and isinstance(args[0], Mapping) else kwargs.get("event")
    if isinstance(event, Mapping):
        authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
        for candidate in (
            authorizer.get("tenant_id"),
            (event.get("pathParameters") or {}).get("tenant_id"),
            event.get("tenant_id"),
            (event.get("detail") or {}).get("tenant_id") if isinstance(event.get("detail"), Mapping) else None,
        ):
            if candidate:
                return str(candidate)
    raise UnprocessableError("no tenant id found for the entitlement check", code="missing_tenant")


def _named_arguments(
    signature: inspect.Signature | None, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """The call's arguments by parameter name (a `tenant_id` or `enforcer` passed positionally counts)."""
    if signature is None:
        return dict(kwargs)
    try:
        return {**signature.bind_partial(*args, **kwargs).arguments, **kwargs}
    except TypeError:  # the call itself will fail with Python's own message
        return dict(kwargs)


def require_entitlement(
    resource_type: str,
    quantity: QuantityLike | Callable[..., QuantityLike] = Decimal("1"),
    *,
    tenant_id_from: Callable[[tuple[Any, ...], Mapping[str, Any]], str] = tenant_id_from_call,
    enforcer: EntitlementEnforcer | None = None,
    app: _Resolver | None = None,
    settle: Callable[[Any], QuantityLike] | None = None,
    reservation_ttl: TtlLike | None = None,
    entity: str | Callable[..., str | None] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a Lambda handler, a Powertools route, a coroutine function or a FastAPI endpoint:
    consume `quantity` of `resource_type` for the call's tenant first; run the function only when
    allowed (otherwise raise `QuotaExceededError`, a 402 in a `create_app` API and in FastAPI); if the
    function raises, give the quantity back and re-raise. `quantity` may be a callable of the
    function's arguments. The enforcer is, in order: the call's own `enforcer` argument when it is an
    `EntitlementEnforcer` (``enforcer: EntitlementEnforcer = Depends(...)``), the `enforcer` given here,
    the process-wide one. For a Powertools route without a `tenant_id` argument pass `app`: the tenant
    is then read from its current event.

    With `settle` (a callable of the function's result returning the actual amount), `quantity` is an
    estimate: it is reserved instead of consumed, the actual is settled once the function returns (the
    rest given back, or the extra taken), and everything is cancelled if the function (or `settle`)
    raises. So the quota and the usage meter count what the work really used.

    With `entity` (an id, or a callable of the function's arguments returning one, e.g. the authenticated
    user of a FastAPI endpoint: ``entity=lambda user, **_: user.id``), the take counts at every limited
    level from that entity up to the tenant's quota, or nowhere (`entitlements.entity_take`)."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        try:
            signature: inspect.Signature | None = inspect.signature(func)
        except (TypeError, ValueError):
            signature = None

        def prepare(
            args: tuple[Any, ...], kwargs: Mapping[str, Any]
        ) -> tuple[EntitlementEnforcer, str, QuantityLike, str | None]:
            amount = quantity(*args, **kwargs) if callable(quantity) else quantity
            entity_id = entity(*args, **kwargs) if callable(entity) else entity
            named = _named_arguments(signature, args, kwargs)
            given = named.get("enforcer")
            active = given if isinstance(given, EntitlementEnforcer) else enforcer or default_enforcer()
            if named.get("tenant_id"):
                kwargs = {**kwargs, "tenant_id": named["tenant_id"]}
            elif app is not None:
                args, kwargs = (app.current_event.raw_event,), {}
            return active, tenant_id_from(args, kwargs), amount, entity_id

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                active, tenant_id, amount, entity_id = prepare(args, kwargs)
                if settle is not None:
                    held = active.reserve(tenant_id, resource_type, amount, ttl=reservation_ttl, entity=entity_id)
                    async with held as hold:
                        result = await cast(Callable[..., Awaitable[Any]], func)(*args, **kwargs)
                        hold.settle(settle(result))
                    return result
                answer = await active.check_and_record(tenant_id, resource_type, amount, entity=entity_id)
                check = check_entitlement_or_raise(answer)
                try:
                    return await cast(Callable[..., Awaitable[Any]], func)(*args, **kwargs)
                except BaseException:
                    await _release_quietly_async(active, check)
                    raise

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            active, tenant_id, amount, entity_id = prepare(args, kwargs)
            if settle is not None:
                with active.sync.reserve(
                    tenant_id, resource_type, amount, ttl=reservation_ttl, entity=entity_id
                ) as hold:
                    result = func(*args, **kwargs)
                    hold.settle(settle(result))
                return result
            answer = active.sync.check_and_record(tenant_id, resource_type, amount, entity=entity_id)
            check = check_entitlement_or_raise(answer)
            try:
                return func(*args, **kwargs)
            except BaseException:
                _release_quietly(active, check)
                raise

        return wrapper

    return decorate


def _release_quietly(enforcer: EntitlementEnforcer, check: EntitlementCheck) -> None:
    # The function's own error is what the caller must see; a failed give-back is only logged.
    try:
        enforcer.sync.release(check)
    except Exception:
        logger.exception("could not release quota after the guarded call failed", extra={"tenant_id": check.tenant_id})


async def _release_quietly_async(enforcer: EntitlementEnforcer, check: EntitlementCheck) -> None:
    try:
        await enforcer.release(check)
    except Exception:
        logger.exception("could not release quota after the guarded call failed", extra={"tenant_id": check.tenant_id})
