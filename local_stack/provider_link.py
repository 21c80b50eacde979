"""One billing provider for every container: the stack process owns the in-memory mock (it is the local
Stripe account: customers made through one container must be found through another, and its events are
signed and sent from here), and containers reach it through a multiprocessing manager on 127.0.0.1.

`ProviderServer` serves whatever `get_billing_provider().sync` is in the stack process at call time (the
billing hook installs the webhook-sending mock after the containers started); `install_remote_provider`
runs in each container before the handler is imported and makes `get_billing_provider()` return a
provider whose blocking face forwards every call. Provider errors travel back as themselves (pickled)."""

from __future__ import annotations

import contextlib
import secrets
import threading
from multiprocessing.managers import BaseManager, Server
from typing import Any, Literal

from billing_platform.providers.base import AsyncBillingProvider, ProviderCustomer, ProviderSubscription
from billing_platform.providers.factory import get_billing_provider, set_billing_provider


class CurrentProvider:
    """The stack process's current provider, method by method (the `SyncBillingProvider` protocol)."""

    def create_customer(
        self, tenant_id: str, email: str, name: str | None = None, *, idempotency_key: str | None = None
    ) -> ProviderCustomer:
        return get_billing_provider().sync.create_customer(tenant_id, email, name, idempotency_key=idempotency_key)

    def get_customer(self, customer_id: str) -> ProviderCustomer:
        return get_billing_provider().sync.get_customer(customer_id)

    def create_subscription(
        self, customer_id: str, price_id: str, trial_days: int | None = None, *, idempotency_key: str | None = None
    ) -> ProviderSubscription:
        return get_billing_provider().sync.create_subscription(
            customer_id, price_id, trial_days, idempotency_key=idempotency_key
        )

    def update_subscription(
        self, subscription_id: str, new_price_id: str, *, idempotency_key: str | None = None
    ) -> ProviderSubscription:
        return get_billing_provider().sync.update_subscription(
            subscription_id, new_price_id, idempotency_key=idempotency_key
        )

    def cancel_subscription(
        self, subscription_id: str, immediate: bool = False, *, idempotency_key: str | None = None
    ) -> ProviderSubscription:
        return get_billing_provider().sync.cancel_subscription(
            subscription_id, immediate, idempotency_key=idempotency_key
        )

    def get_subscription(self, subscription_id: str) -> ProviderSubscription:
        return get_billing_provider().sync.get_subscription(subscription_id)

    def list_line_items(
        self, object_type: Literal["checkout_session", "invoice"], object_id: str
    ) -> list[dict[str, Any]]:
        # The top-up effects read every paid invoice's lines: without it each `invoice.paid` was a 500.
        return get_billing_provider().sync.list_line_items(object_type, object_id)


_current = CurrentProvider()


class _Manager(BaseManager):
    pass


_Manager.register("provider", callable=lambda: _current)


class ProviderServer:
    """Serves `CurrentProvider` on a free 127.0.0.1 port, on a daemon thread, until `stop()`."""

    def __init__(self) -> None:
        self.authkey = secrets.token_bytes(16)
        self._server: Server = _Manager(address=("127.0.0.1", 0), authkey=self.authkey).get_server()
        host, port = self._server.address  # type: ignore[misc,str-unpack]
        self.address: tuple[str, int] = (str(host), int(port))
        self._thread = threading.Thread(target=self._serve, name="local-provider", daemon=True)

    def _serve(self) -> None:
        # multiprocessing's Server.serve_forever ends with sys.exit(0), meant for a manager's own process.
        with contextlib.suppress(SystemExit):
            self._server.serve_forever()

    def start(self) -> ProviderServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.stop_event.set()  # type: ignore[attr-defined]
        self._thread.join(5)
        self._server.listener.close()  # type: ignore[attr-defined]


def install_remote_provider(host: str, port: int, authkey: bytes) -> None:
    """In a container: `get_billing_provider()` becomes the stack process's provider."""
    manager = _Manager(address=(host, port), authkey=authkey)
    manager.connect()
    set_billing_provider(AsyncBillingProvider(manager.provider()))  # type: ignore[attr-defined]
