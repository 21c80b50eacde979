"""The local stack's one billing provider, reached from a container process through `provider_link`: every
call of the blocking provider interface must be forwarded. `list_line_items` was not, so in `make dev` every
`invoice.paid` (read for top-up lines) answered 500 and the Stripe stand-in retried it until it gave up."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from billing_platform.providers.base import SyncBillingProvider
from billing_platform.providers.factory import ProviderOnCall, get_billing_provider, set_billing_provider
from billing_platform.providers.mock import MockBillingProvider
from local_stack.provider_link import ProviderServer

CONTAINER = """
import json, sys
from billing_platform.providers.factory import get_billing_provider
from local_stack.provider_link import install_remote_provider

host, port, authkey, session_id = sys.argv[1:]
install_remote_provider(host, int(port), bytes.fromhex(authkey))
provider = get_billing_provider().sync
print(json.dumps({
    "lines": provider.list_line_items("checkout_session", session_id),
    "unknown": provider.list_line_items("invoice", "in_unknown"),
}))
"""


@pytest.fixture
def mock_provider() -> Iterator[MockBillingProvider]:
    previous = get_billing_provider()
    provider = MockBillingProvider()
    set_billing_provider(provider)
    yield provider
    set_billing_provider(previous)


def test_every_method_of_the_blocking_provider_interface_is_forwarded() -> None:
    wanted = {name for name, _ in inspect.getmembers(SyncBillingProvider, inspect.isfunction) if name[0] != "_"}
    assert "list_line_items" in wanted
    assert wanted <= set(dir(ProviderOnCall)), sorted(wanted - set(dir(ProviderOnCall)))


# Manager.serve_forever ends its thread with sys.exit(0) once stopped: how the stdlib stops it, not a failure.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_container_reads_a_top_ups_line_items_from_the_stack_processs_provider(
    mock_provider: MockBillingProvider,
) -> None:
    customer = mock_provider.sync.create_customer("t_link", "link@example.com")
    session_id = mock_provider.sync.buy_topup(customer, "price_topup_tokens_1m", quantity=3, tenant_id="t_link")
    server = ProviderServer().start()
    try:
        host, port = server.address
        run = subprocess.run(
            [sys.executable, "-c", CONTAINER, host, str(port), server.authkey.hex(), session_id],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.stop()
    assert run.returncode == 0, run.stderr[-3000:]
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    assert [(line["price"]["id"], line["quantity"]) for line in answer["lines"]] == [("price_topup_tokens_1m", 3)]
    assert answer["unknown"] == []
