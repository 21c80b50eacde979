"""`GET /v1/tenants/{id}/cost` and `/invoice-preview` through API Gateway events, the real entitlements
handler and moto DynamoDB: the pro plan's numbers worked by hand, the library's two faces answer the same,
and a tenant key cannot read another tenant's cost."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import ModuleType
from typing import Any

import pytest

from billing_platform.costs.library import CostReader
from billing_platform.costs.service import CostService
from tests.factories.apigw import api_event, json_body
from tests.factories.handlers import load_handler
from tests.factories.lambda_context import LambdaContext

NOW = datetime.now(UTC).replace(microsecond=0)
PERIOD = {"period_start": NOW - timedelta(days=3), "period_end": NOW + timedelta(days=27)}


@pytest.fixture
def api(moto_aws: dict[str, str]) -> ModuleType:
    module = load_handler("entitlements")
    module.service().apply_plan("acme", "pro", **PERIOD, source_version=1)
    # tokens: 2,000,000 included, then 0.0002 cents each up to 10M; api_calls: 100,000 included, then
    # 50 cents per started 1,000.
    assert module.service().consume("acme", "tokens", Decimal(3_000_000)).allowed
    assert module.service().consume("acme", "api_calls", Decimal(100_500)).allowed
    return module


def call(module: ModuleType, path: str, tenant_id: str) -> tuple[int, Any]:
    response = module.handler(api_event("GET", path, None, tenant_id=tenant_id), LambdaContext())
    return response["statusCode"], json_body(response)


def test_cost_rates_each_resource_past_its_included_units(api: ModuleType) -> None:
    status, body = call(api, "/v1/tenants/acme/cost", "acme")
    assert status == 200, body
    assert (body["plan_id"], body["currency"]) == ("pro", "usd")
    lines = {line["resource_type"]: line for line in body["lines"]}
    tokens = lines["tokens"]
    assert (tokens["quantity"], tokens["billable"], tokens["amount"]) == ("3000000", "1000000", 200)
    assert tokens["tiers"] == [
        {
            "tier": 1,
            "first": "0",
            "up_to": "10000000",
            "units": "1000000",
            "unit_amount": "0.0002",
            "flat_amount": "0",
            "amount": "200",
        }
    ]
    calls = lines["api_calls"]
    assert (calls["billable"], calls["amount"], calls["stripe_price_id"]) == ("1", 50, "price_pro_api_calls")
    assert body["amount"] == 250


def test_invoice_preview_adds_the_fee_and_totals(api: ModuleType) -> None:
    status, body = call(api, "/v1/tenants/acme/invoice-preview", "acme")
    assert status == 200, body
    kinds = [(line["kind"], line["amount"]) for line in body["lines"]]
    assert kinds[0] == ("fee", 2900)
    assert ("usage", 200) in kinds
    assert ("usage", 50) in kinds
    assert (body["subtotal"], body["credit"], body["total"]) == (3150, 0, 3150)


def test_a_tenant_key_cannot_read_another_tenants_cost(api: ModuleType) -> None:
    for path in ("/v1/tenants/acme/cost", "/v1/tenants/acme/invoice-preview"):
        status, body = call(api, path, "globex")
        assert status == 403, body


def test_library_faces_answer_what_the_route_answers(api: ModuleType) -> None:
    reader = CostReader(CostService(api.service()))
    blocking = reader.sync.invoice_preview("acme")
    awaited = asyncio.run(reader.invoice_preview("acme"))
    assert blocking == awaited
    assert blocking.total == Decimal(3150)
    assert asyncio.run(reader.cost("acme")).amount == reader.sync.cost("acme").amount == Decimal(250)
