from __future__ import annotations

from billing_platform.api.app import create_app
from billing_platform.errors import EntitlementEnforcementError
from tests.factories.apigw import api_event, json_body
from tests.factories.handlers import load_handler
from tests.factories.lambda_context import LambdaContext


def test_health_route_answers_ok() -> None:
    handler = load_handler("health")
    response = handler.handler(api_event("GET", "/health"), LambdaContext())
    assert response["statusCode"] == 200
    assert json_body(response) == {"status": "ok"}


def test_billing_errors_map_to_their_status_and_code() -> None:
    app = create_app(title="t")

    @app.post("/v1/entitlements/consume")
    def consume() -> dict[str, str]:
        raise EntitlementEnforcementError("quota exhausted", details={"resource_type": "tokens"})

    response = app.resolve(api_event("POST", "/v1/entitlements/consume", {}), LambdaContext())
    assert response["statusCode"] == 402
    assert json_body(response) == {
        "code": "entitlement_exceeded",
        "message": "quota exhausted",
        "details": {"resource_type": "tokens"},
    }
