"""Stripe webhook signatures, checked with the standard library, and the secrets they are checked with.

Stripe signs each delivery with `Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`
(several v1 entries while a secret is being rolled). This module checks that header exactly as the SDK's
`stripe.WebhookSignature.verify_header` does (tests/unit/providers/test_stripe_signature.py holds both to the same
verdicts), without importing the SDK: `import stripe` is a large part of the webhook function's cold
start (its HTTP client and `requests`), and a signature check or an event that needs no Stripe call
(most subscription events, every duplicate) has no use for it. `billing_platform.providers.stripe`
re-exports these names.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from billing_platform.errors import ProviderAuthenticationError, WebhookSignatureError
from billing_platform.settings import Settings, get_settings

WEBHOOK_TOLERANCE_SECONDS = 300
# Secrets Manager values are cached per container for this long: a rotated secret reaches warm
# containers within five minutes without a call per request.
SECRET_MAX_AGE_SECONDS = 300
SCHEME = "v1"


def resolve_secret(plain: str | None, secret_arn: str | None, what: str) -> str:
    """The value from the environment (local runs, tests) or from Secrets Manager by ARN (deployed),
    through Powertools parameters with caching. Never logged."""
    if plain:
        return plain
    if secret_arn:
        from aws_lambda_powertools.utilities import parameters

        value = parameters.get_secret(secret_arn, max_age=SECRET_MAX_AGE_SECONDS)
        if isinstance(value, bytes):
            return value.decode("utf-8")
        return str(value)
    raise ProviderAuthenticationError(f"no {what} is configured", code="provider_not_configured")


def webhook_secret(settings: Settings | None = None) -> str:
    """The webhook signing secret (`STRIPE_WEBHOOK_SECRET` locally, its Secrets Manager ARN deployed)."""
    settings = settings or get_settings()
    return resolve_secret(settings.stripe_webhook_secret, settings.stripe_webhook_secret_arn, "webhook secret")


def _rejected(reason: str) -> WebhookSignatureError:
    return WebhookSignatureError(f"webhook signature rejected: {reason}")


def verify_webhook(
    payload: bytes | str,
    signature_header: str | None,
    secret: str,
    *,
    tolerance: int = WEBHOOK_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Check `Stripe-Signature` on the raw body: one v1 signature must match (compared in constant time)
    and the signed timestamp be at most `tolerance` seconds old. Raises `WebhookSignatureError` (400)."""
    body = payload.decode("utf-8") if isinstance(payload, bytes | bytearray) else payload
    if not signature_header:
        raise _rejected("No Stripe-Signature header value was provided.")
    if not secret.strip(" \t\r\n\f\v"):
        raise _rejected("No webhook secret value was provided. It should start with `whsec_`")
    items = [item.split("=", 2) for item in signature_header.split(",")]
    try:
        # The SDK's parsing: the first `t` entry; a missing or non-integer one rejects the header.
        timestamp = int(next(item[1] for item in items if item[0] == "t"))
        signatures = [item[1] for item in items if item[0] == SCHEME]
    except (StopIteration, IndexError, ValueError):
        raise _rejected("Unable to extract timestamp and signatures from header") from None
    if not signatures:
        raise _rejected(f"No signatures found with expected scheme {SCHEME}")
    signed = f"{timestamp}.{body}".encode()
    expected = hmac.new(secret.encode("utf-8"), msg=signed, digestmod=hashlib.sha256).hexdigest()
    # Bytes: compare_digest refuses non-ASCII str, and a garbled header is a 400, not a crash.
    candidates = [candidate.encode("utf-8", "surrogateescape") for candidate in signatures]
    if not any(hmac.compare_digest(expected.encode(), candidate) for candidate in candidates):
        raise _rejected("No signatures found matching the expected signature for payload")
    if tolerance and timestamp < (time.time() if now is None else now) - tolerance:
        raise _rejected(f"Timestamp outside the tolerance zone ({timestamp})")
