"""The local gateway answers, over real HTTP, what API Gateway answers before any route runs, in the API's
error body: a body over API Gateway's 10 MB limit is a 413 the client reads (not a reset connection),
whether it comes with a Content-Length, chunked, or after `Expect: 100-continue`; an unknown route, a
method no route has, a malformed request line or an over-long URI are each answered in the same shape.
Chunked bodies within the limit reach the function whole."""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import pytest

from billing_platform.api.schemas import ErrorBody
from local_stack.server import API_GATEWAY_MAX_BODY_BYTES
from tests.factories.local_stack_process import LocalStackProcess

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local_stack_gateway_answers")]

OVER_LIMIT = API_GATEWAY_MAX_BODY_BYTES + 8 * 1024 * 1024  # 18 MB
PIECE = b"a" * (1024 * 1024)


def _address(stack: LocalStackProcess) -> tuple[str, int]:
    parts = urlsplit(stack.banner.base_url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


def _error_body(raw: bytes, code: str) -> ErrorBody:
    body = ErrorBody.model_validate(json.loads(raw))
    assert body.code == code, body
    return body


def test_an_18_mb_body_with_a_content_length_is_a_413_the_client_reads(stack: LocalStackProcess) -> None:
    # urllib sends the whole body before it reads the answer: a server that answers and closes without
    # reading the rest resets the connection under it (urllib then raises BrokenPipe, not the 413).
    body = PIECE * (OVER_LIMIT // len(PIECE))
    for _attempt in range(3):
        request = urllib.request.Request(
            f"{stack.banner.base_url}/v1/usage", data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=60)
        assert refused.value.code == 413
        _error_body(refused.value.read(), "payload_too_large")


def test_an_18_mb_chunked_body_is_a_413(stack: LocalStackProcess) -> None:
    connection = http.client.HTTPConnection(*_address(stack), timeout=60)
    pieces = iter([PIECE] * (OVER_LIMIT // len(PIECE)))
    connection.request("POST", "/v1/usage", body=pieces, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 413
    _error_body(response.read(), "payload_too_large")
    connection.close()


def test_a_client_that_asks_first_is_refused_before_it_sends_the_body(stack: LocalStackProcess) -> None:
    with socket.create_connection(_address(stack), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/usage HTTP/1.1\r\nHost: local\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {OVER_LIMIT}\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 "), head
    _error_body(body, "payload_too_large")


def test_a_chunked_body_within_the_limit_reaches_the_function_whole(stack: LocalStackProcess) -> None:
    tenant = f"gw_{str(int(time.time() * 1000))[-8:]}"
    connection = http.client.HTTPConnection(*_address(stack), timeout=60)
    payload = json.dumps({"name": "sent chunked", "description": "x" * 480}).encode()
    connection.request(
        "POST",
        f"/v1/tenants/{tenant}/api-keys",
        body=iter([payload[:10], payload[10:300], payload[300:]]),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {stack.banner.operator_token}"},
    )
    response = connection.getresponse()
    created: dict[str, Any] = json.loads(response.read())
    connection.close()
    assert response.status == 201, created
    assert (created["tenant_id"], created["name"], len(created["description"])) == (tenant, "sent chunked", 480)


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        pytest.param(b"GET /no/such/route HTTP/1.1\r\nHost: local\r\n\r\n", 404, "not_found", id="unknown route"),
        pytest.param(b"PUT /v1/usage HTTP/1.1\r\nHost: local\r\n\r\n", 405, "method_not_allowed", id="other method"),
        pytest.param(b"PURGE /v1/usage HTTP/1.1\r\nHost: local\r\n\r\n", 405, "method_not_allowed", id="odd method"),
        pytest.param(
            b"GET /v1/usage?" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: local\r\n\r\n",
            414,
            "request_uri_too_long",
            id="URI too long",
        ),
        pytest.param(
            b"POST /v1/usage HTTP/1.1\r\nHost: local\r\nContent-Length: lots\r\n\r\n",
            400,
            "bad_request",
            id="bad content length",
        ),
    ],
)
def test_gateway_refusals_use_the_api_error_body(
    stack: LocalStackProcess, request_bytes: bytes, status: int, code: str
) -> None:
    with socket.create_connection(_address(stack), timeout=30) as sock:
        sock.sendall(request_bytes)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), head
    assert b"content-type: application/json" in head.lower()
    _error_body(body, code)
