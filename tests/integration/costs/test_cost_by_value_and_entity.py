"""`GET /v1/tenants/{id}/cost` split per priced dimension value and per entity, through the real
entitlements handler (moto): the counters say how much was counted, the usage read model's grouped answers
how it splits. Pro plan: tokens 2,000,000 included then 0.0002 cents each; tokens of model `large` at
0.0006 cents each from the first (a value's price has no included units); api_calls 100,000 included
then 50 cents per started 1,000."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import ModuleType
from typing import Any

import pytest

from billing_platform.usage.aggregator import UsageAggregationService, UsageInsert
from billing_platform.usage.repository import AggregateRepository
from tests.factories.apigw import api_event, json_body
from tests.factories.handlers import load_handler
from tests.factories.lambda_context import LambdaContext

NOW = datetime.now(UTC).replace(microsecond=0)
PERIOD = {"period_start": NOW - timedelta(days=3), "period_end": NOW + timedelta(days=27)}
_SEQUENCE = itertools.count(10**20)


def metered(quantity: int, at: datetime, entity: str | None, model: str | None = None) -> None:
    """Fold one usage record into the read model as the aggregator folds a stream insert."""
    dimensions = (("model", model),) if model else ()
    insert = UsageInsert(str(next(_SEQUENCE)), "w_seed_00", "acme", "tokens", Decimal(quantity), at, dimensions, entity)
    assert UsageAggregationService(repository=AggregateRepository()).apply([insert]).applied == 1


@pytest.fixture
def api(moto_aws: dict[str, str]) -> ModuleType:
    module = load_handler("entitlements")
    module.service().apply_plan("acme", "pro", **PERIOD, source_version=1)
    assert module.service().consume("acme", "tokens", Decimal(3_000_000)).allowed
    assert module.service().consume("acme", "api_calls", Decimal(100_500)).allowed
    return module


def get(module: ModuleType, path: str) -> Any:
    response = module.handler(api_event("GET", path, None, tenant_id="acme"), LambdaContext())
    assert response["statusCode"] == 200, response
    return json_body(response)


def test_cost_is_split_per_priced_model_and_attributed_per_entity(api: ModuleType) -> None:
    metered(500_000, NOW - timedelta(hours=2), "user-a", "large")
    metered(1_500_000, NOW - timedelta(hours=1), "user-b", "small")  # no price of its own: the resource's
    metered(1_000_000, NOW - timedelta(days=1), "user-a")
    metered(7_000_000, NOW - timedelta(days=5), "user-a", "large")  # before the period: not in it
    body = get(api, "/v1/tenants/acme/cost")
    lines = {(line["resource_type"], line["value"]): line for line in body["lines"]}
    own = lines[("tokens", None)]
    assert (own["quantity"], own["billable"], own["amount"]) == ("2500000", "500000", 100)
    large = lines[("tokens", "large")]
    assert (large["dimension"], large["quantity"], large["amount"]) == ("model", "500000", 300)
    assert large["stripe_price_id"] == "price_pro_tokens_large"
    assert body["amount"] == 100 + 300 + 50
    parts = {(p["resource_type"], p["entity_id"]): p for p in body["entities"]}
    assert set(parts) == {("tokens", "user-a"), ("tokens", "user-b")}
    # 400 cents of tokens over 3,000,000 tokens: each half of the usage carries half of it.
    assert (parts[("tokens", "user-a")]["quantity"], parts[("tokens", "user-a")]["amount_exact"]) == ("1500000", "200")
    assert (parts[("tokens", "user-b")]["quantity"], parts[("tokens", "user-b")]["amount_exact"]) == ("1500000", "200")

    preview = get(api, "/v1/tenants/acme/invoice-preview")
    usage = {
        (line["resource_type"], line["value"]): line["amount"] for line in preview["lines"] if line["kind"] == "usage"
    }
    assert usage == {("tokens", None): 100, ("tokens", "large"): 300, ("api_calls", None): 50}
    assert preview["total"] == 2900 + 100 + 300 + 50


def test_without_metered_usage_the_cost_is_the_counters_and_no_entity_is_shown(api: ModuleType) -> None:
    body = get(api, "/v1/tenants/acme/cost")
    assert [(line["resource_type"], line["value"], line["amount"]) for line in body["lines"]] == [
        ("api_calls", None, 50),
        ("tokens", None, 200),
    ]
    assert body["entities"] == []
