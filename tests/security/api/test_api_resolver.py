"""create_app's own defences, on a small app of its own: string annotations under decorators resolve
(else a body silently becomes a required query parameter), bodies that are not UTF-8, not base64 or not
JSON are a 422 in the validation error shape rather than a crash, and the OpenAPI document states the
platform's error body and refusals."""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

import pytest
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


def test_a_body_that_is_not_utf8_is_a_422_not_a_crash() -> None:
    event = api_event("POST", "/v1/greet/ada", raw_body="x")
    event["body"] = base64.b64encode(b"\xff\xfe{\x00}").decode()
    event["isBase64Encoded"] = True
    message = "body is not valid JSON: it is not UTF-8 encoded"
    assert _call(event) == (
        422,
        {
            "code": "validation_error",
            "message": message,
            "details": [{"loc": ["body"], "msg": message, "type": "json_invalid"}],
        },
    )
    event["body"] = "not base64 at all!"
    assert _call(event)[0] == 422


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "body is not valid JSON: Expecting property name enclosed in double quotes at character 1"),
        ("[1,", "body is not valid JSON: Expecting value at character 3"),
        ("garbage", "body is not valid JSON: Expecting value at character 0"),
        ("", "body: Field required"),
    ],
    ids=["broken-object", "truncated-array", "garbage", "empty"],
)
def test_a_body_that_is_not_json_says_so_in_the_validation_shape(raw: str, message: str) -> None:
    status, body = _call(api_event("POST", "/v1/greet/ada", raw_body=raw))
    assert (status, body["code"], body["message"]) == (422, "validation_error", message)
    assert [detail["loc"] for detail in body["details"]] == [["body"]]  # not ["body", <character offset>]


def test_openapi_documents_the_platform_error_body_and_refusals() -> None:
    document = json.loads(app.get_openapi_json_schema())
    schemas = document["components"]["schemas"]
    assert schemas["ErrorBody"]["required"] == ["code", "message"]
    assert schemas["HTTPValidationError"]["required"] == ["code", "message"]
    responses = document["paths"]["/v1/greet/{name}"]["post"]["responses"]
    assert {"413", "422", "429"} <= set(responses)
    assert "400" not in responses  # no Stripe call behind this route: nothing answers 400
    assert responses["413"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
