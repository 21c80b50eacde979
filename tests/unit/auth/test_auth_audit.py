"""The audit log never stores a secret, a key, a key hash or a card number; its helpers and cursors."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_platform.audit.log import (
    REDACTED,
    AuditEntry,
    actor_from_caller,
    redact,
    request_id_from_context,
)
from billing_platform.auth.caller import Caller, PrincipalType
from billing_platform.auth.keys import generate_key, hash_key

# Names for the secret kinds: test ids must not contain the (random) generated key, or xdist workers
# collect different ids and refuse to run.
SECRET_KINDS = (
    "stripe_secret_key",
    "stripe_restricted_key",
    "stripe_webhook_secret",
    "tenant_api_key",
    "card_number_spaced",
    "card_number_dashed",
    "card_number_amex",
)


def _fake_secrets() -> list[str]:
    # Built at runtime: nothing in the source looks like a real credential.
    return [
        "sk_" + "test_" + "fake" * 6,
        "rk_" + "live_" + "fake" * 6,
        "whsec_" + "test_fake" * 3,
        generate_key(live=False)[1],
        "4242 4242 4242 4242",
        "4000-0566-5566-5556",
        "378282246310005",
    ]


def _item_text(entry: AuditEntry) -> str:
    return json.dumps(entry.to_item())


def test_fields_named_like_secrets_are_dropped_and_business_fields_kept() -> None:
    snapshot = {
        "stripe_secret_key": "anything",
        "webhook.secret": "anything",
        "Password": "hunter2",
        "card": {"brand": "visa"},
        "key_hash": hash_key("whatever"),
        "client_secret": "pi_123_secret_abc",
        "tokens": {"limit": "1000", "used": "10"},
        "idempotency_key": "req-1",
        "plan_id": "pro",
        "nested": [{"api_key": "x", "resource": "api_calls"}],
    }
    cleaned = redact(snapshot)
    for name in ("stripe_secret_key", "webhook.secret", "Password", "card", "key_hash", "client_secret"):
        assert cleaned[name] == REDACTED, name
    assert cleaned["tokens"] == {"limit": "1000", "used": "10"}
    assert cleaned["idempotency_key"] == "req-1"
    assert cleaned["plan_id"] == "pro"
    assert cleaned["nested"] == [{"api_key": REDACTED, "resource": "api_calls"}]


@pytest.mark.parametrize("secret", _fake_secrets(), ids=SECRET_KINDS)
def test_secret_shaped_values_are_scrubbed_under_innocent_names(secret: str) -> None:
    entry = AuditEntry(
        tenant_id="t_a",
        actor=f"operator:{secret}",
        action="customer.updated",
        target=f"note {secret}",
        before={"note": f"customer said {secret} on the phone"},
        after={"list": [secret], "meta": {"description": secret}},
    )
    text = _item_text(entry)
    assert secret not in text
    assert secret.replace(" ", "").replace("-", "") not in text


def test_ids_dates_and_non_card_numbers_are_left_alone() -> None:
    kept = {
        "event": "evt_1234567890123456",
        "at": "2026-11-25T12:00:00+00:00",
        "epoch": "1795694400001",  # 13 digits but fails the Luhn check
        "amount": "1999",
        "customer": "cus_ABCdef123",
    }
    assert redact(kept) == kept


@given(
    names=st.lists(st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=12), min_size=1, max_size=4),
    secret_index=st.integers(min_value=0, max_value=len(SECRET_KINDS) - 1),
    prefix=st.text(alphabet=string.ascii_letters + " :,", max_size=10),
    as_list=st.booleans(),
)
def test_a_secret_anywhere_in_a_snapshot_never_reaches_the_stored_item(
    names: list[str], secret_index: int, prefix: str, as_list: bool
) -> None:
    secret = _fake_secrets()[secret_index]
    value: object = f"{prefix} {secret}"
    for name in reversed(names):
        value = {name: [value] if as_list else value}
    entry = AuditEntry(tenant_id="t_a", actor="operator:x", action="a", target="t", after=value)  # type: ignore[arg-type]
    assert secret not in _item_text(entry)


def test_entry_round_trips_through_its_item() -> None:
    entry = AuditEntry(
        tenant_id="t_a",
        actor="operator:arn",
        action="plan.changed",
        target="t_a",
        request_id="req-1",
        before={"plan": "free"},
        after={"plan": "pro"},
    )
    assert AuditEntry.from_item(entry.to_item()) == entry


def test_actor_names_the_principal_never_the_key() -> None:
    operator = Caller(PrincipalType.OPERATOR, "arn:aws:iam::123456789012:user/ops")
    tenant = Caller(PrincipalType.TENANT, "key_0123456789abcdef", "t_a")
    assert actor_from_caller(operator) == "operator:arn:aws:iam::123456789012:user/ops"
    assert actor_from_caller(tenant) == "tenant:t_a:key:key_0123456789abcdef"


def test_request_id_comes_from_the_api_gateway_request_context() -> None:
    assert request_id_from_context({"requestId": "r-1", "extendedRequestId": "x"}) == "r-1"
    assert request_id_from_context({"extendedRequestId": "x"}) == "x"
    assert request_id_from_context(None) is None
