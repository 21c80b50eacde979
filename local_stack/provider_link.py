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

from billing_platform.providers.base import OffloadedProvider
from billing_platform.providers.factory import ProviderOnCall, set_billing_provider

_current = ProviderOnCall()


class _Manager(BaseManager):
    pass


_Manager.register("provider", callable=lambda: _current)


class ProviderServer:
    """Serves `ProviderOnCall` (the stack process's current provider, looked up at each call) on a free
    127.0.0.1 port, on a daemon thread, until `stop()`."""

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
    set_billing_provider(OffloadedProvider(manager.provider()))  # type: ignore[attr-defined]
