"""One error hierarchy for the platform, all of it in this file. Each `BillingError` carries a
machine-readable code and the HTTP status the API answers with; `billing_platform.api.errors` maps them to
responses in one place.

- Caller input: `ValidationError` (422) and `UnprocessableError`; `PayloadTooLargeError` (413);
  `AuthenticationError` (401), `TenantAccessDenied` (403); `NotFoundError` (404), `ConflictError` (409);
  `RateLimitedError` (429, retry later); `CatalogError` (422); `WebhookSignatureError` (400).
- Quotas: `EntitlementEnforcementError` (402) and `QuotaExceededError`, a refused consume with its numbers;
  `SpendCapReachedError` (402 `spend_cap_reached`), a take a hard spend cap refused, with cap, spend and cost.
- The billing provider: `BillingProviderError` (502) and the Stripe-mirroring errors below it.
- Work not done yet, safe to retry (records and events are deduplicated by id): `UsageEnqueueError`,
  `UsageFlushError`, `UsageBufferFull`, `UsageWriteIncomplete`, `MeterUnavailable`, `PublishError` (503);
  `PoisonMessageError` (422): a queue message no retry can fix; `ConfigurationError`: the CLI cannot find
  the stack.
- Not `BillingError`s, never an API response: `StaleWrite`, `EventInProgress` and `TopupTenantUnknown` (a
  concurrent writer or delivery, or an event ahead of the one it needs: the webhook answers 409 / 5xx so
  Stripe retries), `UnauthorizedError` (API Gateway's own 401).
- A refused DynamoDB write is judged in `conditions` (lost race, transient, failure); transient ones reach
  the API as 429 with Retry-After (`api.errors`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from billing_platform.quantities import decimal_str

if TYPE_CHECKING:
    from billing_platform.entitlements.models import EntitlementCheck


class BillingError(Exception):
    """Root of every error the platform raises on purpose."""

    code: str = "billing_error"
    http_status: int = 500

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details or {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class ValidationError(BillingError):
    """Input the API or the library does not accept (422, as Powertools answers a body, path or query its
    types refuse): every refusal of the caller's input has one status and the one error body. The 400s
    left are not input validation: `WebhookSignatureError` (the sender is not Stripe, as Stripe's own
    libraries answer) and `ProviderInvalidRequestError` (Stripe refused a request the platform made)."""

    code = "validation_error"
    http_status = 422


class UnprocessableError(ValidationError):
    """Input the catalog or the schema rejects, such as an unknown resource type (422)."""

    code = "unprocessable"
    http_status = 422


class UndeclaredDimensionError(UnprocessableError):
    """A usage record names a dimension its resource type does not declare in the catalog (422)."""

    code = "undeclared_dimension"
    http_status = 422


class DimensionCapReachedError(UnprocessableError):
    """A usage record carries a new value of a dimension (or a new entity) whose distinct values this
    month already reached the catalog's cap for the tenant (422)."""

    code = "dimension_cap_reached"
    http_status = 422


class NotFoundError(BillingError):
    code = "not_found"
    http_status = 404


class ConflictError(BillingError):
    code = "conflict"
    http_status = 409


class AuthenticationError(BillingError):
    code = "unauthenticated"
    http_status = 401


class TenantAccessDenied(BillingError):
    """A caller authenticated for one tenant asked to act on another (403)."""

    code = "forbidden"
    http_status = 403


class PayloadTooLargeError(BillingError):
    code = "payload_too_large"
    http_status = 413


class RateLimitedError(BillingError):
    code = "rate_limited"
    http_status = 429


class EntitlementEnforcementError(BillingError):
    """A quota is exhausted or a feature is not in the plan (402)."""

    code = "entitlement_exceeded"
    http_status = 402


class QuotaExceededError(EntitlementEnforcementError):
    """A consume was refused (402). The body names the resource, what is left and when it resets."""

    _MESSAGES: ClassVar[dict[str, str]] = {
        "quota_exhausted": "the {} quota is exhausted",
        "not_in_plan": "{} is not included in the plan",
        "suspended": "the subscription is suspended",
        "window_exhausted": "a {} window is used up",
    }
    _CODES: ClassVar[dict[str, str]] = {"quota_exhausted": "quota_exceeded", "window_exhausted": "window_exceeded"}

    def __init__(self, check: EntitlementCheck) -> None:
        reason = str(check.reason or "quota_exhausted")
        super().__init__(
            self._MESSAGES[reason].format(check.resource_type),
            code=self._CODES.get(reason, f"entitlement_{reason}"),
            details={
                "resource_type": check.resource_type,
                "requested": decimal_str(check.quantity),
                "remaining": decimal_str(check.remaining),
                "limit": decimal_str(check.limit),
                "used": decimal_str(check.used),
                "resets_at": check.resets_at.isoformat() if check.resets_at else None,
                "reason": reason,
                # What the tenant's live grants held (they never reset): quota + this was short.
                "grant_remaining": decimal_str(check.grant_remaining),
                # A take naming an entity: which level refused, and what each level holds.
                "entity_id": check.entity_id,
                "refused_by": check.refused_by,
                "levels": [level.to_dict() for level in check.levels],
            },
        )
        if reason == "window_exhausted":
            # The period quota has room: a rate, answered 429 with Retry-After (the window's end).
            self.http_status = 429
            self.details["retry_after_seconds"] = check.retry_after_seconds or 1
        self.check = check

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        # The three facts a client acts on, at the top level as well.
        for name in ("resource_type", "remaining", "resets_at"):
            body[name] = self.details[name]
        return body


class SpendCapReachedError(EntitlementEnforcementError):
    """A take would pass a hard spend cap (402 `spend_cap_reached`): the details carry the cap's scope
    (`period` or the resource), the cap, the spend counted and what the take would have cost (minor units of
    `currency`), all as read in the refused write."""

    code = "spend_cap_reached"

    def __init__(self, refused: Any) -> None:
        super().__init__(
            f"the take would cost {decimal_str(refused.cost)} and the spend is {decimal_str(refused.spend)} of a "
            f"{refused.scope} cap of {decimal_str(refused.cap)} ({refused.currency} minor units)",
            details={
                "scope": refused.scope,
                "currency": refused.currency,
                "cap": decimal_str(refused.cap),
                "spend": decimal_str(refused.spend),
                "cost": decimal_str(refused.cost),
            },
        )
        self.refused = refused


class CatalogError(BillingError):
    """The plan catalog does not know a price, plan or resource."""

    code = "catalog_error"
    http_status = 422


class WebhookSignatureError(BillingError):
    """The Stripe-Signature header does not verify (400): the request is not known to come from Stripe."""

    code = "invalid_signature"
    http_status = 400


class BillingProviderError(BillingError):
    """A failure reported by (or on the way to) the billing provider. Keeps the provider's own code
    and request id so support can find the request in Stripe's dashboard."""

    code = "provider_error"
    http_status = 502

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        provider_code: str | None = None,
        request_id: str | None = None,
        http_status: int | None = None,
        details: dict[str, Any] | None = None,
    ):
        super().__init__(message, code=code, details=details)
        self.provider_code = provider_code
        self.request_id = request_id
        if http_status is not None:
            self.http_status = http_status

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        if self.provider_code:
            body["provider_code"] = self.provider_code
        if self.request_id:
            body["request_id"] = self.request_id
        return body


class PaymentRequiredError(BillingProviderError):
    """The card was declined or the payment needs action (402)."""

    code = "payment_failed"
    http_status = 402


class ProviderInvalidRequestError(BillingProviderError):
    """Stripe answered 400 to a request the platform built (its status mirrored, with Stripe's code)."""

    code = "provider_invalid_request"
    http_status = 400


class ProviderNotFoundError(ProviderInvalidRequestError):
    code = "provider_not_found"
    http_status = 404


class ProviderConflictError(BillingProviderError):
    code = "provider_conflict"
    http_status = 409


class ProviderAuthenticationError(BillingProviderError):
    """The platform's own Stripe credentials were refused: an operator problem, not the caller's."""

    code = "provider_authentication"
    http_status = 502


class ProviderRateLimitError(BillingProviderError):
    code = "provider_rate_limited"
    http_status = 503


class ProviderUnavailableError(BillingProviderError):
    """Connection failures and Stripe 5xx after retries."""

    code = "provider_unavailable"
    http_status = 503


# --- work not done yet: retrying is safe ---------------------------------------------------------------


class UsageEnqueueError(BillingError):
    """Some accepted records could not be put on the queue. Retrying the request with the same record ids
    (or the same Idempotency-Key) is safe: records are deduplicated by id downstream."""

    code = "usage_enqueue_failed"
    http_status = 503


class UsageFlushError(BillingError):
    """Records could not be sent to the usage queue; they are still buffered (see `drain_unsent`)."""

    code = "usage_flush_failed"
    http_status = 503


class UsageBufferFull(BillingError):
    """The buffer holds `max_buffered` unsent records (the queue has been unreachable for a while):
    the caller learns it at once instead of the tracker dropping usage or growing without bound."""

    code = "usage_buffer_full"
    http_status = 503


class UsageWriteIncomplete(BillingError):
    """Some records could not be written after retries; the message must be redelivered."""

    code = "usage_write_incomplete"
    http_status = 503


class MeterUnavailable(BillingError):
    """The usage queue did not take the record; the sweep sends it again later (same record id)."""

    code = "usage_queue_unavailable"
    http_status = 503


class PublishError(BillingError):
    """EventBridge refused an event (its entry failed, or the call did): the caller retries later."""

    http_status = 503
    code = "event_publish_failed"


class PoisonMessageError(UnprocessableError):
    """A message that no retry can make valid. It is reported failed like any other; after the queue's
    maxReceiveCount SQS moves it to the DLQ, where it waits for a fix and a redrive, never blocking."""

    code = "poison_message"


class ConfigurationError(BillingError):
    """The CLI cannot tell where the stack is, or the stack is not there (exit code 3)."""

    code = "configuration_error"


# --- not BillingErrors: never an API response -----------------------------------------------------------


class StaleWrite(Exception):
    """The subscription record changed since it was read (another delivery won the race)."""


class EventInProgress(Exception):
    """Another delivery of the same event holds the claim; Stripe should retry later (409)."""


class TopupTenantUnknown(Exception):
    """A paid top-up whose tenant cannot be told yet (its customer is bound by an event still on its way):
    raised so the webhook answers 5xx and Stripe delivers it again later. Money paid is never dropped."""


class UnauthorizedError(Exception):
    """Raised to make API Gateway answer 401: a REST authorizer signals it with the error message
    `Unauthorized` (any other failure becomes a 500)."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")
