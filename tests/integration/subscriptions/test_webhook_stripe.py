"""The Stripe webhook target end to end: signed, fixture-shaped Stripe events through the real handler
(API Gateway proxy events) against moto, with the real stripe SDK re-fetching objects over the fake
HTTP transport, and a recording fake of the entitlement effects (the exact calls are asserted)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import boto3
import pytest

from billing_platform import clients
from billing_platform.audit.log import AuditLog
from billing_platform.conditions import TRANSACT_ATTEMPTS
from billing_platform.providers.factory import set_billing_provider
from billing_platform.providers.stripe import StripeBillingProvider
from billing_platform.settings import get_settings
from billing_platform.subscriptions.repository import Claim, SubscriptionRepository
from billing_platform.subscriptions.webhooks import WebhookProcessor
from tests.factories import stripe as sf
from tests.factories.faults import ThrottledTransactions
from tests.factories.handlers import load_handler


def ts(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


@dataclass
class RecordingEntitlements:
    """Implements `EntitlementEffects`; records each call, and fails the next `fail` calls."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    fail: int = 0

    def _maybe_fail(self) -> None:
        if self.fail:
            self.fail -= 1
            raise RuntimeError("entitlement store unavailable")

    def apply_plan(
        self,
        tenant_id: str,
        plan_id: str,
        *,
        period_start: datetime,
        period_end: datetime,
        status: str = "active",
        source_version: int | None = None,
    ) -> None:
        self._maybe_fail()
        self.calls.append(("apply_plan", tenant_id, plan_id, period_start, period_end, status))

    def suspend(self, tenant_id: str, reason: str) -> None:
        self._maybe_fail()
        self.calls.append(("suspend", tenant_id, reason))

    def revoke(self, tenant_id: str) -> None:
        self._maybe_fail()
        self.calls.append(("revoke", tenant_id))


@dataclass
class Harness:
    handler: ModuleType
    http: sf.FakeStripeHTTPClient
    entitlements: RecordingEntitlements
    repo: SubscriptionRepository

    @property
    def api(self) -> sf.FakeStripeApi:
        return self.http.api

    def deliver(self, evt: dict[str, Any] | str, **request: Any) -> tuple[int, Any]:
        return sf.deliver(self.handler, evt, **request)

    def story(self, tenant_id: str, *, start: int | None = None, metadata: bool = True) -> sf.SubscriptionStory:
        return sf.SubscriptionStory(self.api, tenant_id, start=start or int(time.time()) - 3600, metadata=metadata)

    def table_items(self) -> list[dict[str, Any]]:
        client = boto3.client("dynamodb", region_name="us-east-1")
        return client.scan(TableName=get_settings().billing_table_name)["Items"]


@pytest.fixture
def hook(moto_aws: dict[str, str], env: pytest.MonkeyPatch) -> Iterator[Harness]:
    env.setenv("STRIPE_WEBHOOK_SECRET", sf.WEBHOOK_SECRET)
    env.setenv("STRIPE_SECRET_KEY", sf.API_KEY)
    get_settings.cache_clear()
    http = sf.FakeStripeHTTPClient()
    provider = StripeBillingProvider(get_settings(), http_client=http)
    set_billing_provider(provider)
    handler = load_handler("stripe_webhook")
    recorder = RecordingEntitlements()
    handler.processor.use(WebhookProcessor(provider.sync, entitlements=recorder))
    yield Harness(handler, http, recorder, SubscriptionRepository())
    set_billing_provider(None)


def ledger(h: Harness, event_id: str) -> dict[str, Any] | None:
    return h.repo.get_event(event_id)


# ------------------------------------------------------------------------------------------ signature


def test_signed_subscription_created_is_applied_with_the_period_of_its_items(hook: Harness) -> None:
    story = hook.story("t_alpha")
    created, _paid = story.subscribe("price_pro_monthly")

    status, body = hook.deliver(created)

    assert status == 200
    assert body == {
        "received": True,
        "event_id": created["id"],
        "type": "customer.subscription.created",
        "outcome": "applied:active",
        "tenant_id": "t_alpha",
    }
    record = hook.repo.get_subscription("t_alpha")
    assert record is not None
    assert (record.subscription_id, record.customer_id, record.status) == (
        story.subscription_id,
        story.customer_id,
        "active",
    )
    assert (record.price_id, record.plan_id) == ("price_pro_monthly", "pro")
    assert record.current_period_start == ts(story.item["current_period_start"])
    assert record.current_period_end == ts(story.item["current_period_end"])
    assert record.version == created["created"]
    assert hook.entitlements.calls == [
        ("apply_plan", "t_alpha", "pro", record.current_period_start, record.current_period_end, "active")
    ]
    assert (ledger(hook, created["id"]) or {})["status"]["S"] == "done"
    entries = AuditLog().list("t_alpha", newest_first=False)
    # The customer was unknown: fetched from Stripe (tenant in its metadata) and bound first.
    assert [e.action for e in entries] == ["customer.bind", "subscription.created"]
    entry = entries[1]
    assert (entry.actor, entry.action, entry.target, entry.request_id) == (
        "stripe:webhook",
        "subscription.created",
        story.subscription_id,
        created["id"],
    )
    assert entry.before is None
    assert entry.after is not None
    assert entry.after["plan_id"] == "pro"


@pytest.mark.parametrize(
    "request_kwargs",
    [
        pytest.param({"body_override": "TAMPERED"}, id="tampered-body"),
        pytest.param({"timestamp": int(time.time()) - 301}, id="expired-timestamp"),
        pytest.param({"omit_signature": True}, id="missing-header"),
        pytest.param({"secret": "whsec_someone_else_entirely_000000"}, id="wrong-secret"),
        pytest.param({"signature": "t=1,v1=deadbeef"}, id="garbage-signature"),
    ],
)
def test_bad_signature_is_400_and_changes_nothing(hook: Harness, request_kwargs: dict[str, Any]) -> None:
    story = hook.story("t_sig")
    created, _ = story.subscribe("price_pro_monthly")
    if request_kwargs.get("body_override") == "TAMPERED":
        forged = json.loads(json.dumps(created))
        forged["data"]["object"]["items"]["data"][0]["price"]["id"] = "price_enterprise_monthly"
        request_kwargs = {"body_override": sf.payload_of(forged)}
    before = hook.table_items()

    status, body = hook.deliver(created, **request_kwargs)

    assert status == 400
    assert body["code"] == "invalid_signature"
    assert hook.table_items() == before == []
    assert hook.entitlements.calls == []
    assert hook.http.requests == []


def test_base64_encoded_body_is_verified_on_the_decoded_bytes(hook: Harness) -> None:
    created, _ = hook.story("t_b64").subscribe("price_pro_monthly")
    request = sf.webhook_request(created, base64_body=True)
    assert request["isBase64Encoded"] is True
    assert base64.b64decode(request["body"]).decode() == sf.payload_of(created)

    status, body = hook.deliver(created, base64_body=True)

    assert (status, body["outcome"]) == (200, "applied:active")


def test_signed_body_that_is_not_an_event_is_422(hook: Harness) -> None:
    status, body = hook.deliver('{"hello": "world"}')
    assert (status, body["code"]) == (422, "validation_error")
    assert hook.table_items() == []


def test_missing_webhook_secret_is_a_5xx_not_a_client_error(hook: Harness, env: pytest.MonkeyPatch) -> None:
    env.delenv("STRIPE_WEBHOOK_SECRET")
    get_settings.cache_clear()
    created, _ = hook.story("t_cfg").subscribe("price_pro_monthly")
    status, body = hook.deliver(created)
    assert status >= 500
    assert "whsec" not in json.dumps(body)
    assert hook.table_items() == []


# ------------------------------------------------------------------------------------- exactly once


def test_duplicate_delivery_is_acknowledged_and_applied_once(hook: Harness) -> None:
    created, _ = hook.story("t_dup").subscribe("price_pro_monthly")

    first = hook.deliver(created)
    second = hook.deliver(created)

    assert first[0] == second[0] == 200
    assert (first[1]["outcome"], second[1]["outcome"]) == ("applied:active", "duplicate")
    assert len(hook.entitlements.calls) == 1
    assert hook.repo.get_subscription("t_dup").revision == 1  # type: ignore[union-attr]


def test_failure_mid_processing_is_5xx_and_the_retry_applies_once(hook: Harness) -> None:
    story = hook.story("t_crash")
    created, _ = story.subscribe("price_pro_monthly")
    hook.entitlements.fail = 1

    status, body = hook.deliver(created)

    assert status == 500
    assert body["code"] == "internal_error"
    assert ledger(hook, created["id"]) is None  # the claim was released: the retry is not a duplicate
    assert hook.entitlements.calls == []

    status, body = hook.deliver(created)  # Stripe's retry

    assert (status, body["outcome"]) == (200, "applied:active")
    assert [c[0] for c in hook.entitlements.calls] == ["apply_plan"]
    assert hook.deliver(created)[1]["outcome"] == "duplicate"
    assert len(hook.entitlements.calls) == 1


def test_provider_outage_during_refetch_is_5xx_then_retry_applies(hook: Harness) -> None:
    story = hook.story("t_outage")
    _created, paid = story.subscribe("price_pro_monthly")
    hook.http.fail_next(503, "api_error", message="Stripe is down", times=10)

    status, body = hook.deliver(paid)  # invoice events re-fetch their subscription

    assert status == 503
    assert body["code"] == "provider_unavailable"
    assert hook.repo.get_subscription("t_outage") is None
    hook.http.faults.clear()
    assert hook.deliver(paid)[1]["outcome"] == "applied:active"


# ---------------------------------------------------------------------------------------------- order


def test_updated_before_created_keeps_the_newer_state(hook: Harness) -> None:
    story = hook.story("t_order")
    created, _ = story.subscribe("price_pro_monthly")
    upgraded = story.change_price("price_enterprise_monthly")

    assert hook.deliver(upgraded)[1]["outcome"] == "applied:active"
    assert hook.deliver(created)[1]["outcome"] == "ignored_stale"

    record = hook.repo.get_subscription("t_order")
    assert record is not None
    assert (record.plan_id, record.version) == ("enterprise", upgraded["created"])
    assert [c[2] for c in hook.entitlements.calls] == ["enterprise"]


def test_an_old_updated_after_a_newer_one_is_ignored(hook: Harness) -> None:
    story = hook.story("t_old")
    created, _ = story.subscribe("price_free_monthly")
    to_pro = story.change_price("price_pro_monthly")
    to_enterprise = story.change_price("price_enterprise_monthly")

    for evt in (created, to_enterprise, to_pro):
        assert hook.deliver(evt)[0] == 200

    record = hook.repo.get_subscription("t_old")
    assert record is not None
    assert record.plan_id == "enterprise"
    assert [c[2] for c in hook.entitlements.calls] == ["free", "enterprise"]


def test_events_in_the_same_second_re_fetch_the_subscription(hook: Harness) -> None:
    story = hook.story("t_tie")
    created, _ = story.subscribe("price_pro_monthly")
    story.step = 0  # Stripe's clock has one-second resolution: both changes carry the same `created`
    to_free = story.change_price("price_free_monthly")
    to_enterprise = story.change_price("price_enterprise_monthly")

    hook.deliver(created)
    hook.deliver(to_enterprise)
    status, body = hook.deliver(to_free)  # delivered last, but not the latest change

    assert (status, body["outcome"]) == (200, "applied:active")
    assert hook.repo.get_subscription("t_tie").plan_id == "enterprise"  # type: ignore[union-attr]
    assert any(r.method == "get" and r.path.endswith(story.subscription_id) for r in hook.http.requests)


def test_a_canceled_subscription_never_comes_back(hook: Harness) -> None:
    story = hook.story("t_dead")
    created, _ = story.subscribe("price_pro_monthly")
    renewed, _ = story.renew()
    deleted = story.end()

    for evt in (created, deleted, renewed):
        hook.deliver(evt)

    record = hook.repo.get_subscription("t_dead")
    assert record is not None
    assert record.status == "canceled"
    assert [c[0] for c in hook.entitlements.calls] == ["apply_plan", "revoke"]


# ------------------------------------------------------------------------------------- event types


def test_unknown_event_type_is_acknowledged_and_changes_nothing(hook: Harness) -> None:
    evt = sf.event("plan.created", sf.fixture("price"), created=int(time.time()))
    status, body = hook.deliver(evt)
    assert (status, body["outcome"]) == (200, "ignored_type")
    assert hook.table_items() == []
    assert hook.entitlements.calls == []


def test_customer_created_binds_the_tenant_from_metadata(hook: Harness) -> None:
    story = hook.story("t_cus")
    status, body = hook.deliver(story.customer_created())
    assert (status, body["outcome"], body["tenant_id"]) == (200, "customer_bound", "t_cus")
    assert hook.repo.tenant_for_customer(story.customer_id) == "t_cus"
    assert hook.repo.customer_for_tenant("t_cus") == story.customer_id


def test_a_binding_throttled_beyond_retries_fails_the_delivery_and_the_redelivery_binds(hook: Harness) -> None:
    story = hook.story("t_thr")
    created = story.customer_created()
    faults = ThrottledTransactions(clients.dynamodb(), TRANSACT_ATTEMPTS)

    status, _body = hook.deliver(created)

    # Not "bound elsewhere" and acknowledged: Stripe must deliver again, and the ledger lets it.
    assert status >= 400
    assert status != 409
    assert faults.refused == TRANSACT_ATTEMPTS
    assert hook.repo.customer_for_tenant("t_thr") is None
    assert ledger(hook, created["id"]) is None
    status, body = hook.deliver(created)
    assert (status, body["outcome"]) == (200, "customer_bound")
    assert hook.repo.customer_for_tenant("t_thr") == story.customer_id


def test_customer_updated_and_deleted_follow_the_binding(hook: Harness) -> None:
    story = hook.story("t_upd")
    hook.deliver(story.customer_created())
    story.customer["email"] = "new@example.com"
    updated = sf.event("customer.updated", story.customer, created=story.now + 5)
    deleted = sf.event("customer.deleted", sf.deleted_customer(story.customer_id), created=story.now + 10)

    assert hook.deliver(updated)[1]["outcome"] == "customer_bound"
    assert hook.repo.get_profile("t_upd")["email"] == "new@example.com"  # type: ignore[index]
    # A deleted customer object has no metadata: the customer -> tenant record resolves it.
    assert hook.deliver(deleted)[1] | {"event_id": None} == {
        "received": True,
        "event_id": None,
        "type": "customer.deleted",
        "outcome": "customer_deleted",
        "tenant_id": "t_upd",
    }
    assert hook.repo.customer_for_tenant("t_upd") is None


def test_tenant_resolved_from_the_customer_record_when_metadata_is_empty(hook: Harness) -> None:
    story = hook.story("t_rec", metadata=False)
    hook.repo.bind_customer("t_rec", story.customer_id)
    created, _ = story.subscribe("price_pro_monthly")
    assert hook.deliver(created)[1]["tenant_id"] == "t_rec"


def test_subscription_of_an_unknown_customer_is_acknowledged_without_effect(hook: Harness) -> None:
    story = hook.story("t_ghost", metadata=False)
    created, _ = story.subscribe("price_pro_monthly")
    status, body = hook.deliver(created)
    assert (status, body["outcome"]) == (200, "no_tenant")
    assert hook.entitlements.calls == []


def test_invoice_paid_re_fetches_and_renewal_applies_the_new_period(hook: Harness) -> None:
    story = hook.story("t_renew")
    created, _ = story.subscribe("price_pro_monthly")
    hook.deliver(created)
    _updated, paid = story.renew()  # the subscription.updated is lost; invoice.paid still carries it

    assert hook.deliver(paid)[1]["outcome"] == "applied:active"

    new_start, new_end = ts(story.item["current_period_start"]), ts(story.item["current_period_end"])
    assert hook.entitlements.calls[-1] == ("apply_plan", "t_renew", "pro", new_start, new_end, "active")
    assert hook.repo.get_subscription("t_renew").current_period_end == new_end  # type: ignore[union-attr]


def test_payment_failed_applies_the_grace_policy_then_unpaid_suspends(hook: Harness) -> None:
    story = hook.story("t_late")
    created, _ = story.subscribe("price_pro_monthly")
    hook.deliver(created)
    failed, past_due = story.fail_payment()

    assert hook.deliver(failed)[1]["outcome"] == "applied:past_due"
    assert hook.deliver(past_due)[1]["outcome"] == "applied:past_due"
    # pro grants 7 days of grace: still the plan, flagged past_due
    assert hook.entitlements.calls[-1][0:3] == ("apply_plan", "t_late", "pro")
    assert hook.entitlements.calls[-1][5] == "past_due"
    record = hook.repo.get_subscription("t_late")
    assert record is not None
    assert record.past_due_since == ts(failed["created"])

    _failed_again, unpaid = story.fail_payment(final=True)
    assert hook.deliver(unpaid)[1]["outcome"] == "applied:unpaid"
    assert hook.entitlements.calls[-1] == ("suspend", "t_late", "subscription unpaid")

    _paid, reactivated = story.pay()
    hook.deliver(reactivated)
    assert hook.entitlements.calls[-1][0:3] == ("apply_plan", "t_late", "pro")


def test_past_due_without_grace_suspends_at_once(hook: Harness) -> None:
    story = hook.story("t_free_late")
    created, _ = story.subscribe("price_free_monthly")  # free: past_due_grace_days = 0
    hook.deliver(created)
    _, past_due = story.fail_payment()
    hook.deliver(past_due)
    assert hook.entitlements.calls[-1] == ("suspend", "t_free_late", "subscription past_due")


def test_cancel_at_period_end_keeps_the_plan_until_deleted(hook: Harness) -> None:
    story = hook.story("t_cancel")
    created, _ = story.subscribe("price_pro_monthly")
    hook.deliver(created)

    hook.deliver(story.cancel_at_period_end())
    record = hook.repo.get_subscription("t_cancel")
    assert record is not None
    assert record.cancel_at_period_end is True
    assert record.cancel_at == ts(story.item["current_period_end"])
    assert hook.entitlements.calls[-1][0:3] == ("apply_plan", "t_cancel", "pro")

    assert hook.deliver(story.end())[1]["outcome"] == "applied:canceled"
    assert hook.entitlements.calls[-1] == ("revoke", "t_cancel")


def test_pause_suspends_and_resume_restores(hook: Harness) -> None:
    story = hook.story("t_pause")
    created, _ = story.subscribe("price_pro_monthly")
    hook.deliver(created)
    assert hook.deliver(story.pause())[1]["outcome"] == "applied:paused"
    assert hook.entitlements.calls[-1] == ("suspend", "t_pause", "subscription paused")
    assert hook.deliver(story.resume())[1]["outcome"] == "applied:active"
    assert hook.entitlements.calls[-1][0:3] == ("apply_plan", "t_pause", "pro")


def test_trial_and_trial_will_end(hook: Harness) -> None:
    story = hook.story("t_trial")
    created, _ = story.subscribe("price_enterprise_monthly", trial_days=14)
    assert hook.deliver(created)[1]["outcome"] == "applied:trialing"
    assert hook.deliver(story.trial_will_end())[1]["outcome"] == "applied:trialing"
    record = hook.repo.get_subscription("t_trial")
    assert record is not None
    assert story.sub is not None
    assert record.trial_end == ts(story.sub["trial_end"])
    assert [c[5] for c in hook.entitlements.calls] == ["trialing", "trialing"]


def test_checkout_session_completed_binds_the_tenant_and_syncs(hook: Harness) -> None:
    story = hook.story("t_checkout", metadata=False)
    story.subscribe("price_pro_monthly")
    status, body = hook.deliver(story.checkout_completed())
    assert (status, body["outcome"], body["tenant_id"]) == (200, "applied:active", "t_checkout")
    assert hook.repo.tenant_for_customer(story.customer_id) == "t_checkout"
    assert hook.entitlements.calls[-1][0:3] == ("apply_plan", "t_checkout", "pro")


def test_payment_mode_checkout_of_no_topup_price_is_acknowledged_without_effect(hook: Harness) -> None:
    # Payment-mode checkouts buy top-ups (tests/integration/grants/test_grant_topups.py); any other price: no effect.
    story = hook.story("t_pay")
    session = sf.checkout_session(story.customer_id, None, tenant_id="t_pay", created=story.now, mode="payment")
    hook.api.line_items[session["id"]] = [sf.checkout_line_item("price_pro_monthly")]
    status, body = hook.deliver(sf.event("checkout.session.completed", session, created=story.now))
    assert (status, body["outcome"]) == (200, "not_a_topup")
    assert hook.entitlements.calls == []
    assert not [i for i in hook.table_items() if i["pk"]["S"].startswith("GRANTS#")]


def test_price_missing_from_the_catalog_is_a_5xx_so_stripe_retries(hook: Harness) -> None:
    created, _ = hook.story("t_unknown_price").subscribe("price_not_in_catalog")
    status, body = hook.deliver(created)
    assert (status, body["code"]) == (500, "unknown_price")
    assert "price_not_in_catalog" in body["message"]
    assert hook.repo.get_subscription("t_unknown_price") is None
    assert ledger(hook, created["id"]) is None


def test_event_claimed_by_a_concurrent_delivery_is_409_so_stripe_retries(hook: Harness) -> None:
    created, _ = hook.story("t_inflight").subscribe("price_pro_monthly")
    assert hook.repo.claim_event(created["id"], created["type"], created["created"]) is Claim.CLAIMED

    status, body = hook.deliver(created)

    assert (status, body["code"]) == (409, "event_in_progress")
    assert hook.repo.get_subscription("t_inflight") is None
    assert hook.entitlements.calls == []


def test_a_late_customer_updated_does_not_undo_a_deletion(hook: Harness) -> None:
    story = hook.story("t_undelete")
    hook.deliver(story.customer_created())
    story.customer["email"] = "old@example.com"
    updated = sf.event("customer.updated", story.customer, created=story.now + 5)
    deleted = sf.event("customer.deleted", sf.deleted_customer(story.customer_id), created=story.now + 10)

    hook.deliver(deleted)
    assert hook.deliver(updated)[0] == 200

    profile = hook.repo.get_profile("t_undelete")
    assert profile is not None
    assert profile["deleted"] is True
    assert profile["email"] == "ada@example.com"
    assert hook.repo.customer_for_tenant("t_undelete") is None


def test_checkout_binding_keeps_the_known_email(hook: Harness) -> None:
    story = hook.story("t_keep_email")
    hook.deliver(story.customer_created())
    story.subscribe("price_pro_monthly")
    hook.deliver(story.checkout_completed())
    assert hook.repo.get_profile("t_keep_email")["email"] == "ada@example.com"  # type: ignore[index]
