"""The fake Stripe (`FakeStripeHTTPClient` / `FakeStripeApi`) served over real HTTP on 127.0.0.1, for
code that builds its own `StripeClient` (``StripeBillingProvider(api_key=...)`` as the design document
writes it): point `STRIPE_API_BASE` at `url` and the SDK's default transport talks to it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.factories.stripe import FakeStripeHTTPClient


class _Handler(BaseHTTPRequestHandler):
    fake: FakeStripeHTTPClient

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        url = f"http://{self.headers.get('Host', 'stripe')}{self.path}"
        with self.server.lock:  # type: ignore[attr-defined]
            text, status, headers = self.fake._answer(self.command, url, dict(self.headers), body)
        payload = text.encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = _serve

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return None


@contextmanager
def fake_stripe_server(fake: FakeStripeHTTPClient | None = None) -> Iterator[tuple[str, FakeStripeHTTPClient]]:
    """Serve `fake` on a free port; yields (base URL, fake) and stops the server on exit."""
    fake = fake or FakeStripeHTTPClient()
    handler = type("Handler", (_Handler,), {"fake": fake})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.lock = threading.Lock()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
