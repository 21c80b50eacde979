"""The OpenAPI document (merged from every API function's resolver, as the local stack serves it) reads like
a reference: every operation has a short camelCase operationId, a one-line summary saying what it does,
one tag of its domain, and a typed model for each success answer, whose fields are all declared."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from billing_platform import resources
from billing_platform.api.app import ApiTag
from local_stack.openapi import merged_openapi
from local_stack.runtime import FunctionRuntime

HTTP_METHODS = ("get", "put", "post", "delete", "patch")
CAMEL_CASE = re.compile(r"^[a-z][a-zA-Z]{1,30}$")


@pytest.fixture(scope="module")
def document() -> Iterator[dict[str, Any]]:
    runtime = FunctionRuntime()
    try:
        yield merged_openapi(runtime, "http://127.0.0.1")
    finally:
        runtime.stop(fork_server=False)


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def test_every_route_is_one_operation(document: dict[str, Any]) -> None:
    served = {(method.upper(), path) for method, path, _op in operations(document)}
    assert served == {(route.method, route.path) for route, _fn in resources.routes()}


def test_operation_ids_are_short_camel_case_and_unique(document: dict[str, Any]) -> None:
    ids = [op.get("operationId", "") for _m, _p, op in operations(document)]
    assert [i for i in ids if not CAMEL_CASE.match(i)] == []
    assert len(set(ids)) == len(ids)


def test_summaries_say_what_the_operation_does(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        summary = operation.get("summary", "")
        assert summary, f"{method.upper()} {path}: no summary"
        assert "\n" not in summary, summary
        assert len(summary) <= 110, summary
        # Powertools' default summary is the method and path ("GET /health").
        assert path not in summary, summary


def test_each_operation_has_the_one_tag_of_its_domain(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        tags = operation.get("tags", [])
        assert len(tags) == 1, f"{method.upper()} {path}: {tags}"
        assert tags[0] in set(ApiTag), f"{method.upper()} {path}: {tags}"
    assert {tag["name"] for tag in document["tags"]} == set(ApiTag)
    assert all(tag.get("description") for tag in document["tags"])
    used = {operation["tags"][0] for _m, _p, operation in operations(document)}
    assert used == set(ApiTag), "a tag no operation uses"


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    return dict(document["components"]["schemas"][ref.rsplit("/", 1)[-1]]) if ref else schema


def test_every_success_answer_is_a_typed_model(document: dict[str, Any]) -> None:
    untyped = []
    for method, path, operation in operations(document):
        successes = {status: r for status, r in operation["responses"].items() if status.startswith("2")}
        assert len(successes) == 1, f"{method.upper()} {path}: {sorted(successes)}"
        for status, response in successes.items():
            schema = response["content"]["application/json"]["schema"]
            model = _resolve(document, schema)
            # A model: declared properties, none of them an open object (additionalProperties of anything).
            if "$ref" not in schema or model.get("type") != "object" or not model.get("properties"):
                untyped.append(f"{method.upper()} {path} {status}: {schema}")
                continue
            for name, field in model["properties"].items():
                if field.get("type") == "object" and field.get("additionalProperties") in (None, True, {}):
                    untyped.append(f"{method.upper()} {path} {status}: {model['title']}.{name} is an open object")
    assert untyped == []
