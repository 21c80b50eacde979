"""The HTTP side of the local API: moves bytes between sockets and `Gateway.handle`."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from billing_platform import resources
from local_stack.gateway import Gateway, HttpRequest, HttpResponse, error

log = logging.getLogger("local_stack.server")


class _Handler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle's algorithm the body waits for the client's delayed
    # ACK of the headers, a delay per request at one client. API Gateway adds no such delay.
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.server.gateway_max_body:
            # Answer without reading a body we will not use, and close: the rest is still on the wire.
            self._send(error(413, "payload_too_large", "request body is too large"), close=True)
            return
        body = self.rfile.read(length) if length else b""
        request = HttpRequest(
            method=self.command,
            target=self.path,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
        )
        try:
            response = self.server.gateway.handle(request)
        except Exception:
            log.exception("gateway failed")
            response = error(500, "internal_error", "Internal server error")
        self._send(response)

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
        # Anything above the API's limit is refused before the body is read (a 10 MB cap as API Gateway).
        self.gateway_max_body = max(resources.MAX_REQUEST_BODY_BYTES, 10 * 1024 * 1024)
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
