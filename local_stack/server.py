"""The HTTP side of the local API: moves bytes between sockets and `Gateway.handle`.

What API Gateway itself answers before any route runs is answered here in the API's error body
(`{"code", "message"}`): a body over API Gateway's 10 MB payload limit is a 413 (refused when the client
asks first with `Expect: 100-continue`, else answered and the rest of the body read and dropped in small
pieces, so the client reads the 413 instead of a reset connection and no large body is held in memory);
a request line, header block or URI the server cannot take, and any method, get the same body shape.
Bodies may come with a Content-Length or chunked (Transfer-Encoding), as a client may send them.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from billing_platform import resources
from local_stack.gateway import Gateway, HttpRequest, HttpResponse, error

log = logging.getLogger("local_stack.server")

# API Gateway's payload limit (REST APIs): larger requests never reach the API.
API_GATEWAY_MAX_BODY_BYTES = 10 * 1024 * 1024
# After a 413, the rest of the body is read and dropped (never held) for at most this long, so the client
# finishes sending and reads the answer; a client still sending after that gets the connection closed.
DISCARD_SECONDS = 30.0
DISCARD_IDLE_SECONDS = 5.0
_PIECE = 64 * 1024
_MAX_CHUNK_LINE = 1024


class BodyTooLarge(Exception):
    pass


class MalformedBody(Exception):
    pass


def too_large(limit: int) -> HttpResponse:
    return error(413, "payload_too_large", f"request body is over the {limit}-byte limit")


def _status_code(status: int) -> str:
    """`request_uri_too_long` for 414: the machine code of a status the server itself answers."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return "bad_request"
    return re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_")


class _Handler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle's algorithm the body waits for the client's delayed
    # ACK of the headers, a delay per request at one client. API Gateway adds no such delay.
    disable_nagle_algorithm = True
    _unread = 0  # body bytes declared but not read when a 413 was decided

    def __getattr__(self, name: str) -> Callable[[], None]:
        # Every method reaches the gateway, which answers an unknown one as it answers any method a route
        # lacks (404 / 405 in the error body), instead of the standard library's HTML 501 page.
        if name.startswith("do_") and name[3:].isalpha() and name[3:].isupper():
            return self._serve
        raise AttributeError(name)

    def handle_expect_100(self) -> bool:
        # A client that asks before sending (curl does for large bodies) hears the refusal and sends nothing.
        try:
            declared = self._declared_length()
        except MalformedBody:
            declared = 0  # answered as a 400 by _serve
        if declared > self.server.gateway_max_body:
            self._send(too_large(self.server.gateway_max_body), close=True)
            return False
        return super().handle_expect_100()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # What the standard library refuses itself (bad request line, URI or headers too long ...), in the
        # API's error body rather than its HTML page.
        try:
            text = message or HTTPStatus(code).phrase
        except ValueError:
            text = "bad request"
        self._send(error(code, _status_code(code), text), close=True)

    def _declared_length(self) -> int:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return 0
        raw = self.headers.get("Content-Length")
        if raw is None:
            return 0
        if not raw.strip().isdigit():
            raise MalformedBody(f"Content-Length {raw!r} is not a number of bytes")
        return int(raw)

    def _serve(self) -> None:
        limit = self.server.gateway_max_body
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        try:
            body = self._read_chunked(limit) if chunked else self._read_sized(limit)
        except BodyTooLarge:
            log.info("%s %s: body over %d bytes refused", self.command, self.path, limit)
            self._send(too_large(limit), close=True)
            self._discard_rest(chunked)
            return
        except MalformedBody as exc:
            self._send(error(400, "bad_request", str(exc)), close=True)
            return
        request = HttpRequest(
            method=self.command,
            target=self.path,
            headers=[(k, v) for k, v in self.headers.items() if k.lower() != "transfer-encoding"],
            body=body,
            source_ip=self.client_address[0],
        )
        try:
            response = self.server.gateway.handle(request)
        except Exception:
            log.exception("gateway failed")
            response = error(500, "internal_error", "Internal server error")
        self._send(response)

    # -- request bodies

    def _read_sized(self, limit: int) -> bytes:
        length = self._declared_length()
        if length > limit:
            self._unread = length
            raise BodyTooLarge()
        return self.rfile.read(length) if length else b""

    def _read_chunked(self, limit: int) -> bytes:
        pieces: list[bytes] = []
        total = 0
        while True:
            size = self._chunk_size()
            if size == 0:
                self._skip_trailers()
                return b"".join(pieces)
            total += size
            if total > limit:
                self._unread = size  # the rest of this chunk; later chunks are parsed by _discard_rest
                raise BodyTooLarge()
            pieces.append(self._exactly(size))
            self._end_of_chunk()

    def _chunk_size(self) -> int:
        line = self.rfile.readline(_MAX_CHUNK_LINE)
        try:
            return int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise MalformedBody(f"bad chunk size line {line[:40]!r}") from None

    def _exactly(self, size: int) -> bytes:
        data = self.rfile.read(size)
        if len(data) != size:
            raise MalformedBody("the body ended inside a chunk")
        return data

    def _end_of_chunk(self) -> None:
        if self.rfile.readline(_MAX_CHUNK_LINE).strip():
            raise MalformedBody("a chunk is longer than its size line says")

    def _skip_trailers(self) -> None:
        while self.rfile.readline(_MAX_CHUNK_LINE).strip():
            pass

    def _discard_rest(self, chunked: bool) -> None:
        """Read and drop what the client is still sending after a 413, a piece at a time, for a bounded time:
        closing with unread data makes the kernel reset the connection, and the client would lose the 413."""
        deadline = time.monotonic() + DISCARD_SECONDS
        self.connection.settimeout(DISCARD_IDLE_SECONDS)
        try:
            self._drop(self._unread, deadline)
            while chunked and time.monotonic() < deadline:
                self._end_of_chunk()
                size = self._chunk_size()
                if size == 0:
                    self._skip_trailers()
                    return
                self._drop(size, deadline)
        except (OSError, MalformedBody):
            pass  # the client stopped sending, or sent something else: the connection closes either way

    def _drop(self, count: int, deadline: float) -> None:
        while count > 0 and time.monotonic() < deadline:
            data = self.rfile.read(min(count, _PIECE))
            if not data:
                return
            count -= len(data)

    def _send(self, response: HttpResponse, *, close: bool = False) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)
        if close:
            self.wfile.flush()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)


class ApiServer(ThreadingHTTPServer):
    """One thread per connection (keep-alive ones included); connections beyond what the threads take at
    once wait in the kernel's accept queue, which is sized for bursts of thousands of clients (the
    default of 5 reset connections at 32 clients). Over-concurrency is then queued per function by the
    runtime, or answered 429 as API Gateway throttles; never dropped."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 4096  # listen backlog; Linux caps it at net.core.somaxconn (4096 by default)

    def __init__(self, gateway: Gateway, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), _Handler)
        self.gateway = gateway
        # Bodies up to API Gateway's limit reach the gateway (which applies the API's own, smaller one).
        self.gateway_max_body = max(resources.MAX_REQUEST_BODY_BYTES, API_GATEWAY_MAX_BODY_BYTES)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> ApiServer:
        self._thread = threading.Thread(target=self.serve_forever, name="local-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.server_close()
