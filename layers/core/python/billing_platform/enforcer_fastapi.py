"""The quota error as FastAPI sees it. Imported only by `check_entitlement_or_raise` in a process that
has already imported FastAPI, so no Lambda code path loads it."""

from __future__ import annotations

from fastapi import HTTPException

from billing_platform.entitlements.models import EntitlementCheck
from billing_platform.errors import QuotaExceededError


class QuotaExceededHTTPException(QuotaExceededError, HTTPException):
    """A `QuotaExceededError` that is also a `fastapi.HTTPException`: FastAPI answers it with 402 and
    ``{"detail": <the HTTP API's 402 body>}``; ``except EntitlementEnforcementError`` still catches it,
    and an app's own `BillingError` handler (earlier in the class's MRO) takes precedence."""

    def __init__(self, check: EntitlementCheck) -> None:
        QuotaExceededError.__init__(self, check)
        # A window refusal is a 429: the client may retry when the window ends.
        retry = self.details.get("retry_after_seconds") if self.http_status == 429 else None
        headers = {"Retry-After": str(retry)} if retry is not None else None
        HTTPException.__init__(self, status_code=self.http_status, detail=self.to_dict(), headers=headers)

    def __str__(self) -> str:
        return self.message


def quota_http_exception(check: EntitlementCheck) -> QuotaExceededHTTPException:
    return QuotaExceededHTTPException(check)
