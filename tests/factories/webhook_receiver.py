"""A tenant's webhook endpoint on 127.0.0.1 (free port): records every POST, answers with the statuses it is
told to (then 200), and checks signatures the way a tenant would, with the stripe SDK."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import stripe

from billing_platform.tenant_webhooks.signing import SIGNATURE_HEADER


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def signature_valid(self, secret: str, tolerance: int = 300) -> bool:
        """Stripe's own verifier (`t=...,v1=...`, HMAC-SHA256 over `{t}.{body}`, within `tolerance` s)."""
        try:
            stripe.WebhookSignature.verify_header(
                self.body.decode(), self.headers.get(SIGNATURE_HEADER, ""), secret, tolerance
            )
        except stripe.SignatureVerificationError:
            return False
        return True


@dataclass
class Receiver:
    url: str
    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in order, then 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = threading.Event()
        for _ in range(int(timeout * 10)):
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            deadline.wait(0.1)
        with self.lock:
            return list(self.received)


@contextmanager
def webhook_receiver(path: str = "/hooks/billing") -> Iterator[Receiver]:
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                receiver.received.append(Received(self.path, dict(self.headers.items()), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
