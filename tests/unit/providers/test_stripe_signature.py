"""providers.stripe_signature checks `Stripe-Signature` without the SDK: held here to the SDK's own
verdicts (`stripe.WebhookSignature.verify_header`) on signed, tampered, stale, rolled-secret and garbled
headers. And the webhook's provider is only built when an event calls it."""

from __future__ import annotations

import time

import pytest
import stripe

from billing_platform.errors import WebhookSignatureError
from billing_platform.providers import factory
from billing_platform.providers.factory import ProviderOnCall
from billing_platform.providers.stripe_signature import WEBHOOK_TOLERANCE_SECONDS, verify_webhook
from billing_platform.subscriptions.webhooks import WebhookProcessor

SECRET = "whsec_test_signature_0123456789"
OTHER = "whsec_test_other_9876543210"
BODY = '{"id": "evt_1", "object": "event", "type": "customer.subscription.updated", "note": "caf\u00e9"}'


def _sign(body: str, secret: str = SECRET, at: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=at)


def _v1(header: str) -> str:
    return header.split("v1=", 1)[1]


def _cases() -> dict[str, tuple[str | bytes, str]]:
    """Built when a test runs: the timestamps are relative to now (a collection long before would age them)."""
    now = int(time.time())
    return {
        "signed": (BODY, _sign(BODY)),
        "signed, bytes body": (BODY.encode(), _sign(BODY)),
        "tampered body": (BODY.replace("evt_1", "evt_2"), _sign(BODY)),
        "other secret": (BODY, _sign(BODY, OTHER)),
        "rolled secrets, second matches": (BODY, f"{_sign(BODY, OTHER)},v1={_v1(_sign(BODY))}"),
        "v0 only": (BODY, _sign(BODY).replace("v1=", "v0=")),
        "stale": (BODY, _sign(BODY, at=now - WEBHOOK_TOLERANCE_SECONDS - 5)),
        "just inside tolerance": (BODY, _sign(BODY, at=now - WEBHOOK_TOLERANCE_SECONDS + 30)),
        "future timestamp": (BODY, _sign(BODY, at=now + 3600)),
        "no timestamp": (BODY, f"v1={_v1(_sign(BODY))}"),
        "timestamp not a number": (BODY, f"t=soon,v1={_v1(_sign(BODY))}"),
        "bare key without value": (BODY, f"t={now},v1"),
        "empty header": (BODY, ""),
        "garbage": (BODY, "not a header"),
        "timestamp changed after signing": (BODY, _sign(BODY, at=now).replace(f"t={now}", f"t={now + 1}")),
        "uppercase hex": (BODY, f"t={now},v1={_v1(_sign(BODY, at=now)).upper()}"),
    }


def _sdk_accepts(body: str | bytes, header: str) -> bool:
    try:
        stripe.WebhookSignature.verify_header(body, header, SECRET, WEBHOOK_TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError:
        return False
    return True


def _ours_accepts(body: str | bytes, header: str) -> bool:
    try:
        verify_webhook(body, header, SECRET)
    except WebhookSignatureError:
        return False
    return True


CASE_NAMES = list(_cases())


@pytest.mark.parametrize("case", CASE_NAMES)
def test_same_verdict_as_the_stripe_sdk(case: str) -> None:
    body, header = _cases()[case]
    assert _ours_accepts(body, header) == _sdk_accepts(body, header)


def test_the_cases_cover_both_verdicts() -> None:
    verdicts = {case: _ours_accepts(body, header) for case, (body, header) in _cases().items()}
    assert {case for case, accepted in verdicts.items() if accepted} == {
        "signed",
        "signed, bytes body",
        "rolled secrets, second matches",
        "just inside tolerance",
        "future timestamp",
    }


def test_a_non_ascii_signature_is_rejected_not_a_crash() -> None:
    # The SDK's compare_digest raises TypeError on non-ASCII text; here it is a plain rejection (400).
    with pytest.raises(WebhookSignatureError):
        verify_webhook(BODY, f"t={int(time.time())},v1=\u00e9\u00e9", SECRET)


def test_no_secret_is_rejected() -> None:
    with pytest.raises(WebhookSignatureError, match="No webhook secret"):
        verify_webhook(BODY, _sign(BODY), " ")


def test_the_webhook_builds_no_provider_until_an_event_calls_it(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []

    class Recording:
        @property
        def sync(self) -> object:
            built.append("sync")
            return self

        def get_subscription(self, subscription_id: str) -> str:
            return f"fetched {subscription_id}"

    monkeypatch.setattr(factory, "create_billing_provider", lambda settings: Recording())
    factory.set_billing_provider(None)
    try:
        provider = ProviderOnCall()
        WebhookProcessor(provider)
        assert built == []
        assert provider.get_subscription("sub_1") == "fetched sub_1"  # type: ignore[comparison-overlap]
        assert built == ["sync"]
    finally:
        factory.set_billing_provider(None)
