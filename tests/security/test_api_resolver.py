"""create_app's own defences, on a small app of its own: string annotations under decorators resolve
(else a body silently becomes a required query parameter), bodies that are not UTF-8 or not base64 are a
400 rather than a crash, and the OpenAPI document states the platform's error body and refusals."""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Path
from pydantic import BaseModel

from billing_platform.api.app import create_app
from billing_platform.observability import tracer
from tests.factories.apigw import api_event
from tests.factories.lambda_context import LambdaContext

Name = Annotated[str, Path(pattern=r"^[a-z]+$")]


class Greeting(BaseModel):
    text: str


app = create_app(title="resolver under test")


@app.post("/v1/greet/<name>")
# The handlers' own decorator: its wrapper's globals are Powertools' module, not this one.
@tracer.capture_method(capture_response=False)
def greet(name: Name, body: Greeting) -> dict[str, str]:
    return {"name": name, "text": body.text}


def _call(event: dict[str, Any]) -> tuple[int, Any]:
    response = app.resolve(event, LambdaContext())
    return response["statusCode"], json.loads(response["body"])


def test_string_annotations_under_a_decorator_resolve_to_body_and_path_parameters() -> None:
    status, body = _call(api_event("POST", "/v1/greet/ada", {"text": "hi"}))
    assert (status, body) == (200, {"name": "ada", "text": "hi"})
    status, body = _call(api_event("POST", "/v1/greet/ADA", {"text": "hi"}))
    assert status == 422
    assert body["code"] == "validation_error"


def test_a_body_that_is_not_utf8_is_a_400_not_a_crash() -> None:
    event = api_event("POST", "/v1/greet/ada", raw_body="x")
    event["body"] = base64.b64encode(b"\xff\xfe{\x00}").decode()
    event["isBase64Encoded"] = True
    assert _call(event) == (400, {"code": "invalid_body", "message": "the request body must be UTF-8 encoded JSON"})
    event["body"] = "not base64 at all!"
    assert _call(event)[0] == 400


def test_openapi_documents_the_platform_error_body_and_refusals() -> None:
    document = json.loads(app.get_openapi_json_schema())
    schemas = document["components"]["schemas"]
    assert schemas["ErrorBody"]["required"] == ["code", "message"]
    assert schemas["HTTPValidationError"]["required"] == ["code", "message"]
    responses = document["paths"]["/v1/greet/{name}"]["post"]["responses"]
    assert {"400", "413", "422", "429"} <= set(responses)
    assert responses["413"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
