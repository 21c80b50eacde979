"""The operator API (functions/subscriptions) through real API Gateway proxy events against moto, with
the real stripe SDK over the fake transport: status codes, error bodies, audit entries, and that a
rejected request writes nothing and calls Stripe not at all."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
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
from billing_platform.subscriptions.models import SubscriptionRecord
from billing_platform.subscriptions.repository import SubscriptionRepository
from tests.factories import stripe as sf
from tests.factories.apigw import api_event, json_body
from tests.factories.faults import ThrottledTransactions
from tests.factories.handlers import load_handler
from tests.factories.lambda_context import LambdaContext


@dataclass
class Api:
    handler: ModuleType
    http: sf.FakeStripeHTTPClient

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        kwargs.setdefault("operator", True)
        response = self.handler.handler(api_event(method, path, body, **kwargs), LambdaContext())
        return int(response["statusCode"]), json_body(response)

    def customer(self, tenant_id: str = "t_acme") -> str:
        status, body = self.call("POST", "/v1/customers", {"tenant_id": tenant_id, "email": "ops@acme.test"})
        assert status == 201, body
        return str(body["id"])

    def subscription(self, tenant_id: str = "t_acme", price_id: str = "price_pro_monthly") -> str:
        self.customer(tenant_id)
        status, body = self.call("POST", "/v1/subscriptions", {"tenant_id": tenant_id, "price_id": price_id})
        assert status == 201, body
        return str(body["id"])


def items() -> list[dict[str, Any]]:
    return boto3.client("dynamodb", region_name="us-east-1").scan(TableName=get_settings().billing_table_name)["Items"]


@pytest.fixture
def api(moto_aws: dict[str, str], env: pytest.MonkeyPatch) -> Iterator[Api]:
    env.setenv("STRIPE_SECRET_KEY", sf.API_KEY)
    get_settings.cache_clear()
    http = sf.FakeStripeHTTPClient()
    set_billing_provider(StripeBillingProvider(get_settings(), http_client=http, sleep=lambda _s: None))
    yield Api(load_handler("subscriptions"), http)
    set_billing_provider(None)


# ----------------------------------------------------------------------------------------- customers


def test_create_customer_binds_the_tenant_and_audits(api: Api) -> None:
    status, body = api.call("POST", "/v1/customers", {"tenant_id": "t_acme", "email": "ops@acme.test", "name": "Acme"})

    assert status == 201
    assert body["id"].startswith("cus_")
    assert (body["tenant_id"], body["email"], body["name"]) == ("t_acme", "ops@acme.test", "Acme")
    repo = SubscriptionRepository()
    assert repo.customer_for_tenant("t_acme") == body["id"]
    assert repo.tenant_for_customer(body["id"]) == "t_acme"
    (entry,) = AuditLog().list("t_acme")
    assert (entry.action, entry.target) == ("customer.create", body["id"])
    assert entry.actor.startswith("operator:")
    assert entry.request_id
    assert api.http.mutations[0].params["metadata[tenant_id]"] == "t_acme"


def test_a_throttled_binding_is_sent_again_and_binds(api: Api) -> None:
    faults = ThrottledTransactions(clients.dynamodb(), TRANSACT_ATTEMPTS - 1)
    status, body = api.call("POST", "/v1/customers", {"tenant_id": "t_acme", "email": "ops@acme.test"})
    assert (status, faults.refused) == (201, TRANSACT_ATTEMPTS - 1)
    assert SubscriptionRepository().customer_for_tenant("t_acme") == body["id"]
    assert [e.action for e in AuditLog().list("t_acme")] == ["customer.create"]


def test_a_binding_throttled_beyond_retries_is_a_429_not_someone_elses_customer(api: Api) -> None:
    faults = ThrottledTransactions(clients.dynamodb(), TRANSACT_ATTEMPTS)
    status, body = api.call("POST", "/v1/customers", {"tenant_id": "t_acme", "email": "ops@acme.test"})
    assert (status, body["code"], faults.refused) == (429, "rate_limited", TRANSACT_ATTEMPTS)
    repo = SubscriptionRepository()
    assert repo.customer_for_tenant("t_acme") is None  # nothing written: not bound, not audited
    assert AuditLog().list("t_acme") == []
    status, body = api.call("POST", "/v1/customers", {"tenant_id": "t_acme", "email": "ops@acme.test"})
    assert status == 201
    assert repo.customer_for_tenant("t_acme") == body["id"]


def test_get_customer(api: Api) -> None:
    customer_id = api.customer()
    status, body = api.call("GET", f"/v1/customers/{customer_id}")
    assert (status, body["id"], body["tenant_id"]) == (200, customer_id, "t_acme")


def test_unknown_customer_is_404_with_stripes_code(api: Api) -> None:
    status, body = api.call("GET", "/v1/customers/cus_nope")
    assert (status, body["code"], body["provider_code"]) == (404, "provider_not_found", "resource_missing")
    assert body["request_id"].startswith("req_")


def test_second_customer_for_a_tenant_is_409_without_calling_stripe(api: Api) -> None:
    first = api.customer()
    api.http.requests.clear()
    status, body = api.call("POST", "/v1/customers", {"tenant_id": "t_acme", "email": "x@acme.test"})
    assert (status, body["code"], body["details"]) == (409, "customer_exists", {"customer_id": first})
    assert api.http.requests == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"tenant_id": "t_acme", "email": "not-an-email"}, "email", id="bad-email"),
        pytest.param({"email": "a@b.co"}, "tenant_id", id="missing-tenant"),
        pytest.param({"tenant_id": "t acme!", "email": "a@b.co"}, "tenant_id", id="bad-tenant"),
        pytest.param({"tenant_id": "t_acme", "email": "a@b.co", "plan": "x"}, "plan", id="extra-field"),
    ],
)
def test_invalid_customer_body_is_422_and_writes_nothing(api: Api, body: dict[str, Any], field: str) -> None:
    status, answer = api.call("POST", "/v1/customers", body)
    assert (status, answer["code"]) == (422, "validation_error")
    assert field in answer["message"]
    assert items() == []
    assert api.http.requests == []


def test_malformed_json_is_rejected_and_writes_nothing(api: Api) -> None:
    status, answer = api.call("POST", "/v1/customers", raw_body="{not json")
    assert (status, answer["code"]) == (422, "validation_error")
    assert answer["message"].startswith("body is not valid JSON: ")
    assert items() == []


def test_tenant_callers_are_403_and_anonymous_401(api: Api) -> None:
    body = {"tenant_id": "t_acme", "email": "ops@acme.test"}
    status, answer = api.call("POST", "/v1/customers", body, operator=False, tenant_id="t_acme")
    assert (status, answer["code"]) == (403, "forbidden")
    status, answer = api.call("POST", "/v1/customers", body, operator=False)
    assert (status, answer["code"]) == (401, "unauthenticated")
    assert items() == []
    assert api.http.requests == []


# ------------------------------------------------------------------------------------- subscriptions


def test_create_subscription_is_201_with_the_plan(api: Api) -> None:
    api.customer()
    status, body = api.call(
        "POST",
        "/v1/subscriptions",
        {"tenant_id": "t_acme", "price_id": "price_pro_monthly", "trial_days": 7},
        headers={"Idempotency-Key": "order-42"},
    )
    assert status == 201
    assert body["id"].startswith("sub_")
    assert (body["status"], body["plan_id"], body["price_id"], body["tenant_id"]) == (
        "trialing",
        "pro",
        "price_pro_monthly",
        "t_acme",
    )
    assert body["current_period_end"] == body["trial_end"]
    assert api.http.mutations[-1].idempotency_key == "create-subscription:order-42"
    actions = [e.action for e in AuditLog().list("t_acme", newest_first=False)]
    assert actions == ["customer.create", "subscription.create"]


def test_unknown_price_is_422_that_says_so_without_calling_stripe(api: Api) -> None:
    api.customer()
    api.http.requests.clear()
    status, body = api.call("POST", "/v1/subscriptions", {"tenant_id": "t_acme", "price_id": "price_gold"})
    assert (status, body["code"]) == (422, "unknown_price")
    assert "price_gold" in body["message"]
    assert api.http.requests == []


def test_subscription_for_a_tenant_without_customer_is_404(api: Api) -> None:
    status, body = api.call("POST", "/v1/subscriptions", {"tenant_id": "t_none", "price_id": "price_pro_monthly"})
    assert (status, body["code"]) == (404, "customer_not_found")
    assert api.http.requests == []


def test_a_tenant_with_a_live_subscription_gets_409(api: Api) -> None:
    api.customer()
    customer_id = SubscriptionRepository().customer_for_tenant("t_acme")
    assert customer_id is not None
    record = SubscriptionRecord(
        tenant_id="t_acme",
        subscription_id="sub_existing",
        customer_id=customer_id,
        status="active",
        price_id="price_pro_monthly",
        plan_id="pro",
        subscription_created="2026-11-01T00:00:00Z",
    )
    SubscriptionRepository().save_subscription(record, None)
    api.http.requests.clear()
    status, body = api.call("POST", "/v1/subscriptions", {"tenant_id": "t_acme", "price_id": "price_pro_monthly"})
    assert (status, body["code"], body["details"]["subscription_id"]) == (409, "subscription_exists", "sub_existing")
    assert api.http.requests == []


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        pytest.param((402, "card_error", "card_declined"), 402, "payment_failed", id="card-declined-402"),
        pytest.param((401, "invalid_request_error", None), 502, "provider_authentication", id="stripe-auth-502"),
        pytest.param((400, "idempotency_error", None), 409, "provider_conflict", id="idempotency-409"),
        pytest.param((429, "rate_limit_error", "rate_limit"), 503, "provider_rate_limited", id="rate-limit-503"),
        pytest.param((500, "api_error", None), 503, "provider_unavailable", id="stripe-down-503"),
        pytest.param(
            (400, "invalid_request_error", "parameter_invalid_integer"),
            400,
            "provider_invalid_request",
            id="invalid-400",
        ),
    ],
)
def test_provider_errors_map_to_statuses_with_stripes_code_and_request_id(
    api: Api, fault: tuple[int, str, str | None], status: int, code: str
) -> None:
    api.customer()
    http_status, error_type, stripe_code = fault
    api.http.fail_next(http_status, error_type, code=stripe_code, message="Stripe says no", times=5)

    answer_status, body = api.call(
        "POST", "/v1/subscriptions", {"tenant_id": "t_acme", "price_id": "price_pro_monthly"}
    )

    assert (answer_status, body["code"]) == (status, code)
    assert body["request_id"].startswith("req_fake")
    if stripe_code:
        assert body["provider_code"] == stripe_code
    assert [e.action for e in AuditLog().list("t_acme")] == ["customer.create"]


def test_get_change_and_cancel_a_subscription(api: Api) -> None:
    sub_id = api.subscription()

    status, body = api.call("GET", f"/v1/subscriptions/{sub_id}")
    assert (status, body["plan_id"], body["tenant_id"]) == (200, "pro", "t_acme")

    status, body = api.call("PATCH", f"/v1/subscriptions/{sub_id}", {"price_id": "price_enterprise_monthly"})
    assert (status, body["plan_id"], body["price_id"]) == (200, "enterprise", "price_enterprise_monthly")
    assert api.http.mutations[-1].params["proration_behavior"] == "create_prorations"

    status, body = api.call("DELETE", f"/v1/subscriptions/{sub_id}")
    assert (status, body["status"], body["cancel_at_period_end"]) == (200, "active", True)
    assert body["cancel_at"] == body["current_period_end"]

    status, body = api.call("DELETE", f"/v1/subscriptions/{sub_id}", query={"immediate": "true"})
    assert (status, body["status"]) == (200, "canceled")

    entries = AuditLog().list("t_acme", newest_first=False)
    assert [e.action for e in entries] == [
        "customer.create",
        "subscription.create",
        "subscription.change_price",
        "subscription.cancel_at_period_end",
        "subscription.cancel_now",
    ]
    change, at_end, now = entries[2:]
    assert change.before is not None
    assert change.after is not None
    assert (change.before["plan_id"], change.after["plan_id"]) == ("pro", "enterprise")
    assert at_end.before is not None
    assert at_end.after is not None
    assert (at_end.before["cancel_at_period_end"], at_end.after["cancel_at_period_end"]) == (False, True)
    assert now.before is not None
    assert now.after is not None
    assert (now.before["status"], now.after["status"]) == ("active", "canceled")


def test_patch_to_an_unknown_price_is_422_and_stripe_is_not_asked(api: Api) -> None:
    sub_id = api.subscription()
    api.http.requests.clear()
    status, body = api.call("PATCH", f"/v1/subscriptions/{sub_id}", {"price_id": "price_gold"})
    assert (status, body["code"]) == (422, "unknown_price")
    assert api.http.requests == []


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        pytest.param("GET", "/v1/subscriptions/not-a-sub", {}, id="bad-id"),
        pytest.param("DELETE", "/v1/subscriptions/sub_x", {"query": {"immediate": "maybe"}}, id="bad-immediate"),
        pytest.param("PATCH", "/v1/subscriptions/sub_x", {"body": {}}, id="patch-without-price"),
    ],
)
def test_bad_requests_are_422(api: Api, method: str, path: str, kwargs: dict[str, Any]) -> None:
    status, body = api.call(method, path, kwargs.pop("body", None), **kwargs)
    assert (status, body["code"]) == (422, "validation_error")
    assert api.http.requests == []


def test_unknown_subscription_is_404(api: Api) -> None:
    status, body = api.call("DELETE", "/v1/subscriptions/sub_missing")
    assert (status, body["code"]) == (404, "provider_not_found")


def test_openapi_is_generated_from_the_routes(api: Api) -> None:
    schema = api.handler.app.get_openapi_schema().model_dump(by_alias=True, exclude_none=True)
    paths = schema["paths"]
    assert set(paths) == {
        "/v1/customers",
        "/v1/customers/{customer_id}",
        "/v1/subscriptions",
        "/v1/subscriptions/{subscription_id}",
    }
    assert set(paths["/v1/subscriptions/{subscription_id}"]) == {"get", "patch", "delete"}
    assert "CreateSubscriptionRequest" in schema["components"]["schemas"]


def test_a_tenant_whose_customer_was_deleted_can_get_a_new_one(api: Api) -> None:
    first = api.customer()
    SubscriptionRepository().mark_customer_deleted("t_acme", first)
    second = api.customer()
    assert second != first
    assert SubscriptionRepository().customer_for_tenant("t_acme") == second
