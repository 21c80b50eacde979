"""The entitlement library for other Lambdas and services: `EntitlementEnforcer`, the
`require_entitlement` decorator and `check_entitlement_or_raise`.

Everything is synchronous underneath (boto3 is), so a Lambda needs no event loop; asyncio services use
the `*_async` methods (or decorate a coroutine function), which run the same call in a worker thread.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, ParamSpec, Protocol, TypeVar, cast

from billing_platform.entitlements.models import DenyReason, EntitlementCheck, decimal_str
from billing_platform.entitlements.service import EntitlementService
from billing_platform.errors import EntitlementEnforcementError, UnprocessableError
from billing_platform.observability import logger

P = ParamSpec("P")
R = TypeVar("R")
QuantityLike = Decimal | int | str


class _Resolver(Protocol):
    """A Powertools resolver (only its current event is read)."""

    @property
    def current_event(self) -> Any: ...


class QuotaExceededError(EntitlementEnforcementError):
    """A consume was refused (402). The body names the resource, what is left and when it resets."""

    def __init__(self, check: EntitlementCheck) -> None:
        reason = check.reason or DenyReason.EXHAUSTED
        messages = {
            DenyReason.EXHAUSTED: f"the {check.resource_type} quota is exhausted",
            DenyReason.NOT_IN_PLAN: f"{check.resource_type} is not included in the plan",
            DenyReason.SUSPENDED: "the subscription is suspended",
        }
        super().__init__(
            messages[reason],
            code="quota_exceeded" if reason is DenyReason.EXHAUSTED else f"entitlement_{reason.value}",
            details={
                "resource_type": check.resource_type,
                "requested": decimal_str(check.quantity),
                "remaining": decimal_str(check.remaining),
                "limit": decimal_str(check.limit),
                "used": decimal_str(check.used),
                "resets_at": check.resets_at.isoformat() if check.resets_at else None,
                "reason": reason.value,
                # What the tenant's live grants held (they never reset): quota + this was short.
                "grant_remaining": decimal_str(check.grant_remaining),
            },
        )
        self.check = check

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        # The three facts a client acts on, at the top level as well.
        for name in ("resource_type", "remaining", "resets_at"):
            body[name] = self.details[name]
        return body


def check_entitlement_or_raise(check: EntitlementCheck) -> EntitlementCheck:
    """Return `check` when allowed; raise `QuotaExceededError` (an `EntitlementEnforcementError`,
    answered with 402 by every `create_app` API) when not."""
    if not check.allowed:
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


class EntitlementEnforcer:
    """Checks and records quota use for a tenant, for code running anywhere (Lambda or asyncio).

    `check_and_record` is one DynamoDB request on the hot path; plan and feature look-ups are cached
    for a TTL, remaining quota never is. A denied check records nothing."""

    def __init__(self, service: EntitlementService | None = None) -> None:
        self._service = service

    @property
    def service(self) -> EntitlementService:
        # Created on first use, so importing a module that builds an enforcer costs no client.
        if self._service is None:
            self._service = EntitlementService()
        return self._service

    def check_and_record(
        self,
        tenant_id: str,
        resource_type: str,
        quantity: QuantityLike = Decimal(1),
        *,
        idempotency_key: str | None = None,
    ) -> EntitlementCheck:
        """Consume `quantity` if the tenant is entitled to it; the answer says whether it was."""
        return self.service.consume(tenant_id, resource_type, to_quantity(quantity), idempotency_key=idempotency_key)

    def check(self, tenant_id: str, resource_type: str, quantity: QuantityLike = Decimal(1)) -> EntitlementCheck:
        """Would `quantity` be granted now? Consumes nothing."""
        return self.service.check(tenant_id, resource_type, to_quantity(quantity))

    def release(self, check: EntitlementCheck) -> EntitlementCheck:
        """Give back what a granted `check` consumed (its own shards, its own period, once for an
        idempotent consume). A denied check took nothing and gives nothing back."""
        if not check.allowed or (not check.shards_used and check.idempotency_key is None):
            return check
        if check.idempotency_key is not None:
            return self.service.release(check.tenant_id, check.resource_type, idempotency_key=check.idempotency_key)
        return self.service.release_taken(
            check.tenant_id, check.resource_type, check.shards_used, period_end=check.resets_at
        )

    def has_feature(self, tenant_id: str, feature: str) -> bool:
        """Whether the tenant's plan includes `feature` (cached with the plan)."""
        return self.service.has_feature(tenant_id, feature)

    def require_feature(self, tenant_id: str, feature: str) -> None:
        """Raise `EntitlementEnforcementError` (402) unless the tenant's plan includes `feature`."""
        if not self.has_feature(tenant_id, feature):
            raise EntitlementEnforcementError(
                f"feature {feature!r} is not included in the plan",
                code="feature_not_in_plan",
                details={"feature": feature},
            )

    # asyncio services: the same calls off the event loop's thread.

    async def check_and_record_async(
        self,
        tenant_id: str,
        resource_type: str,
        quantity: QuantityLike = Decimal(1),
        *,
        idempotency_key: str | None = None,
    ) -> EntitlementCheck:
        return await asyncio.to_thread(
            self.check_and_record, tenant_id, resource_type, quantity, idempotency_key=idempotency_key
        )

    async def check_async(
        self, tenant_id: str, resource_type: str, quantity: QuantityLike = Decimal(1)
    ) -> EntitlementCheck:
        return await asyncio.to_thread(self.check, tenant_id, resource_type, quantity)

    async def release_async(self, check: EntitlementCheck) -> EntitlementCheck:
        return await asyncio.to_thread(self.release, check)

    async def has_feature_async(self, tenant_id: str, feature: str) -> bool:
        return await asyncio.to_thread(self.has_feature, tenant_id, feature)


_default_enforcer = EntitlementEnforcer()


def default_enforcer() -> EntitlementEnforcer:
    """The process-wide enforcer `require_entitlement` uses unless given one."""
    return _default_enforcer


def tenant_id_from_call(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
    """Where a decorated function's tenant is: a `tenant_id` argument (Powertools routes), else the
    Lambda event's authorizer context (the authenticated tenant), path parameters or top-level field."""
    if kwargs.get("tenant_id"):
        return str(kwargs["tenant_id"])
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


def require_entitlement(
    resource_type: str,
    quantity: QuantityLike | Callable[..., QuantityLike] = Decimal("1"),
    *,
    tenant_id_from: Callable[[tuple[Any, ...], Mapping[str, Any]], str] = tenant_id_from_call,
    enforcer: EntitlementEnforcer | None = None,
    app: _Resolver | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a Lambda handler, a Powertools route or a coroutine function: consume `quantity` of
    `resource_type` for the call's tenant first; run the function only when allowed (otherwise raise
    `QuotaExceededError`, a 402 in a `create_app` API); if the function raises, give the quantity back
    and re-raise. `quantity` may be a callable of the function's arguments. For a Powertools route
    without a `tenant_id` argument pass `app`: the tenant is then read from its current event."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        def prepare(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[EntitlementEnforcer, str, QuantityLike]:
            amount = quantity(*args, **kwargs) if callable(quantity) else quantity
            if app is not None and not kwargs.get("tenant_id"):
                args, kwargs = (app.current_event.raw_event,), {}
            return enforcer or default_enforcer(), tenant_id_from(args, kwargs), amount

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                active, tenant_id, amount = prepare(args, kwargs)
                check = check_entitlement_or_raise(
                    await active.check_and_record_async(tenant_id, resource_type, amount)
                )
                try:
                    return await cast(Callable[..., Awaitable[Any]], func)(*args, **kwargs)
                except BaseException:
                    await _release_quietly_async(active, check)
                    raise

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            active, tenant_id, amount = prepare(args, kwargs)
            check = check_entitlement_or_raise(active.check_and_record(tenant_id, resource_type, amount))
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
        enforcer.release(check)
    except Exception:
        logger.exception("could not release quota after the guarded call failed", extra={"tenant_id": check.tenant_id})


async def _release_quietly_async(enforcer: EntitlementEnforcer, check: EntitlementCheck) -> None:
    try:
        await enforcer.release_async(check)
    except Exception:
        logger.exception("could not release quota after the guarded call failed", extra={"tenant_id": check.tenant_id})
