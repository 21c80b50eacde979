"""One error hierarchy for the platform. Each error carries a machine-readable code and the HTTP
status the API answers with; `billing_platform.api.errors` maps them to responses in one place.

Domain errors defined beside the code that raises them (all `BillingError`s unless noted):

- `entitlements.enforcer.QuotaExceededError` (EntitlementEnforcementError, 402): a refused consume.
- `usage.ingest.UsageEnqueueError` (503), `usage.tracker.UsageFlushError` (503),
  `usage.tracker.UsageBufferFull` (503), `usage.repository.UsageWriteIncomplete` (503): usage that
  could not be queued or written yet; retrying is safe (records are deduplicated by id).
- `usage.consumer.PoisonMessageError` (UnprocessableError, 422): a queue message no retry can fix.
- `cli.environment.ConfigurationError`: the CLI cannot find the stack.
- Not `BillingError`s, never an API response: `subscriptions.repository.StaleWrite` and
  `subscriptions.webhooks.EventInProgress` (a concurrent writer or delivery; the webhook answers 409
  so Stripe retries), `auth.authorizer.UnauthorizedError` (API Gateway's own 401).
- A refused DynamoDB write is judged in `conditions` (lost race, transient, failure); transient ones
  reach the API as 429 with Retry-After (`api.errors`).
"""

from __future__ import annotations

from typing import Any


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


class SpendCapReachedError(EntitlementEnforcementError):
    """A take would pass a hard spend cap (402 `spend_cap_reached`): the details carry the cap's scope
    (`period` or the resource), the cap, the spend counted and what the take would have cost (minor units of
    `currency`), all as read in the refused write."""

    code = "spend_cap_reached"

    def __init__(self, refused: Any) -> None:
        super().__init__(
            f"the take would cost {_plain(refused.cost)} and the spend is {_plain(refused.spend)} of a "
            f"{refused.scope} cap of {_plain(refused.cap)} ({refused.currency} minor units)",
            details={
                "scope": refused.scope,
                "currency": refused.currency,
                "cap": _plain(refused.cap),
                "spend": _plain(refused.spend),
                "cost": _plain(refused.cost),
            },
        )
        self.refused = refused


def _plain(amount: Any) -> str:
    """A Decimal as plain text without trailing zeros (`200.0000` -> `200`)."""
    text = format(amount.normalize(), "f")
    return "0" if text == "-0" else text


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
