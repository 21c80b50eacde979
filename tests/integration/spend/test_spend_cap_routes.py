"""The spend-cap routes through API Gateway events and the real entitlements handler (moto): a cap in
another currency than the plan's, on a plan without prices or with a bad amount is a 422 and nothing is
written; a hard cap refuses the take that would pass it with 402 `spend_cap_reached` (cap, spend, cost)
and the quota is left as it was; a tenant key cannot touch another tenant's cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import ModuleType
from typing import Any

import pytest

from tests.factories.apigw import api_event, json_body
from tests.factories.handlers import load_handler
from tests.factories.lambda_context import LambdaContext

NOW = datetime.now(UTC).replace(microsecond=0)
PERIOD = {"period_start": NOW - timedelta(days=3), "period_end": NOW + timedelta(days=27)}
CAP_PATH = "/v1/tenants/acme/spend-cap"


@pytest.fixture
def api(moto_aws: dict[str, str]) -> ModuleType:
    module = load_handler("entitlements")
    module.service().apply_plan("acme", "pro", **PERIOD, source_version=1)
    module.service().apply_plan("freebie", "free", **PERIOD, source_version=1)
    return module


def call(
    module: ModuleType, method: str, path: str, body: Any = None, tenant_id: str = "acme", scope: str = "admin"
) -> tuple[int, Any]:
    authorizer = {"principalId": f"key_{tenant_id}", "principal_type": "tenant", "tenant_id": tenant_id}
    authorizer |= {"key_id": f"key_{tenant_id}", "scope": scope}
    response = module.handler(api_event(method, path, body, authorizer=authorizer), LambdaContext())
    return response["statusCode"], json_body(response)


def consume(module: ModuleType, quantity: int) -> tuple[int, Any]:
    body = {"tenant_id": "acme", "resource_type": "tokens", "quantity": quantity}
    return call(module, "POST", "/v1/entitlements/consume", body)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"currency": "eur", "amount": 100}, "currency_mismatch"),
        ({"currency": "usd", "amount": -5}, "validation_error"),
        ({"currency": "usx", "amount": 100}, "validation_error"),
        ({"currency": "usd", "amount": 100, "resources": {"storage_mb": 10}}, "not_priced"),
    ],
    ids=["other-currency", "negative", "unknown-currency", "unpriced-resource"],
)
def test_a_bad_cap_is_refused_and_nothing_is_written(api: ModuleType, body: dict[str, Any], code: str) -> None:
    status, answer = call(api, "PUT", CAP_PATH, body)
    assert (status, answer["code"]) == (422, code), answer
    status, shown = call(api, "GET", CAP_PATH)
    assert (status, shown["capped"]) == (200, False)


def test_a_plan_without_prices_takes_no_cap(api: ModuleType) -> None:
    status, answer = call(api, "PUT", "/v1/tenants/freebie/spend-cap", {"currency": "usd", "amount": 100}, "freebie")
    assert (status, answer["code"]) == (422, "no_prices")


def test_the_take_that_would_pass_a_hard_cap_is_refused_with_the_numbers(api: ModuleType) -> None:
    status, shown = call(api, "PUT", CAP_PATH, {"currency": "usd", "amount": 250})
    assert (status, shown["capped"], shown["amount"], shown["kind"]) == (200, True, 250, "hard")
    assert consume(api, 2_000_000)[0] == 200  # the included tokens: no spend
    assert consume(api, 1_000_000)[0] == 200  # 1M at 0.0002 cents: 200 cents
    status, refused = consume(api, 300_000)  # 60 cents more would make 260
    assert status == 402, refused
    assert refused["code"] == "spend_cap_reached"
    assert refused["details"] == {"scope": "period", "currency": "usd", "cap": "250", "spend": "200", "cost": "60"}
    status, shown = call(api, "GET", CAP_PATH)
    assert (shown["spend"], shown["spend_by_resource"]) == ("200", {"tokens": "200"})
    assert api.service().check("acme", "tokens").used == Decimal(3_000_000)  # the refused take wrote nothing
    assert consume(api, 250_000)[0] == 200  # 50 cents: exactly at the cap
    assert call(api, "GET", CAP_PATH)[1]["spend"] == "250"


def test_removing_the_cap_lets_takes_through_again(api: ModuleType) -> None:
    call(api, "PUT", CAP_PATH, {"currency": "usd", "amount": 1})
    assert consume(api, 2_500_000)[0] == 402
    status, shown = call(api, "DELETE", CAP_PATH)
    assert (status, shown["capped"]) == (200, False)
    assert consume(api, 2_500_000)[0] == 200


def test_a_use_key_reads_the_cap_but_only_an_admin_key_or_the_operator_sets_it(api: ModuleType) -> None:
    assert call(api, "PUT", CAP_PATH, {"currency": "usd", "amount": 5}, scope="use")[0] == 403
    assert call(api, "DELETE", CAP_PATH, scope="use")[0] == 403
    assert call(api, "GET", CAP_PATH, scope="use")[0] == 200
    event = api_event("PUT", CAP_PATH, {"currency": "usd", "amount": 5}, operator=True)
    assert api.handler(event, LambdaContext())["statusCode"] == 200


def test_a_tenant_key_cannot_read_or_set_another_tenants_cap(api: ModuleType) -> None:
    assert call(api, "GET", CAP_PATH, tenant_id="globex")[0] == 403
    assert call(api, "PUT", CAP_PATH, {"currency": "usd", "amount": 5}, tenant_id="globex")[0] == 403


def test_a_cap_set_after_usage_counts_that_usage_from_the_start(api: ModuleType) -> None:
    assert consume(api, 2_500_000)[0] == 200  # 500,000 past the included 2M: 100 cents before any cap
    status, shown = call(api, "PUT", CAP_PATH, {"currency": "usd", "amount": 150})
    assert (status, shown["spend"], shown["spend_by_resource"]) == (200, "100", {"tokens": "100"})
    assert consume(api, 250_000)[0] == 200  # 50 cents: 150, exactly the cap
    status, refused = consume(api, 5)
    assert (status, refused["details"]["spend"]) == (402, "150")
    status, preview = call(api, "GET", "/v1/tenants/acme/invoice-preview")
    assert preview["total"] == 2900 + 150
