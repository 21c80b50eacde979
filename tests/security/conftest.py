"""Fixtures of the security suite. `security_stack` is the real local stack (started once for the
package, in its own xdist group), with two tenants' keys, a revoked key and an operator token."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator

import pytest

from billing_platform import clients, resources
from billing_platform.settings import get_settings
from tests.security.harness import (
    TENANT_A,
    TENANT_B,
    Credential,
    Invocation,
    SecurityStack,
    environment_snapshot,
    forget_handler_modules,
    handler_modules,
    restore_environment,
)

STACK_GROUP = "security_stack"


def _module_fingerprint() -> dict[str, int]:
    return {
        name: id(vars(sys.modules[name]).get("app", sys.modules[name]))
        for name in handler_modules()
        if name in sys.modules
    }


def _reset_layer_caches(*, provider: bool = False) -> None:
    from billing_platform.providers.factory import set_billing_provider

    get_settings.cache_clear()
    clients.reset()
    if provider:
        # The in-memory mock provider holds the stack's customers: forgotten only with the stack.
        set_billing_provider(None)


def _create_key(sec: SecurityStack, tenant: str, name: str) -> tuple[str, str]:
    response = sec.call("POST", f"/v1/tenants/{tenant}/api-keys", {"name": name}, credential=Credential.OPERATOR)
    assert response.status == 201, response.body
    body = response.json()
    return body["id"], body["secret"]


@pytest.fixture(scope="package")
def _started_stack() -> Iterator[tuple[SecurityStack, dict[str, int]]]:
    from local_stack.stack import LocalStack, StackOptions

    saved = environment_snapshot()
    forget_handler_modules()
    _reset_layer_caches(provider=True)
    stack = LocalStack(StackOptions(pollers=False, hooks=False, log_level="DEBUG"))
    sec = SecurityStack(stack=stack, gateway=None, env={})  # type: ignore[arg-type]
    original_invoke = stack.runtime.invoke

    def recording_invoke(name: str, event: dict) -> object:  # type: ignore[type-arg]
        invocation = Invocation(name, event)
        with sec._lock:
            sec.invocations.append(invocation)
            del sec.invocations[:-200]
        invocation.result = original_invoke(name, event)
        return invocation.result

    # An instance attribute shadows the method: the gateway captures this wrapper when it is built.
    stack.runtime.invoke = recording_invoke  # type: ignore[method-assign]
    try:
        stack.start()
        assert stack.server is not None
        sec.gateway = stack.server.gateway
        sec.env = dict(stack.env)
        sec.headers = {
            Credential.NONE: None,
            Credential.OPERATOR: f"Bearer {stack.operator_token}",
        }
        _own_id, own = _create_key(sec, TENANT_A, "primary")
        _other_id, other = _create_key(sec, TENANT_B, "primary")
        revoked_id, revoked = _create_key(sec, TENANT_A, "to revoke")
        victim_id, victim = _create_key(sec, TENANT_A, "victim of the DELETE route")
        response = sec.call("DELETE", f"/v1/tenants/{TENANT_A}/api-keys/{revoked_id}", credential=Credential.OPERATOR)
        assert response.status == 200, response.body
        sec.headers[Credential.OWN] = f"Bearer {own}"
        sec.headers[Credential.OTHER] = f"Bearer {other}"
        sec.headers[Credential.REVOKED] = f"Bearer {revoked}"
        sec.key_ids = {"revoked": revoked_id, "victim": victim_id}
        sec.secrets = {
            "tenant A key": own,
            "tenant B key": other,
            "revoked key": revoked,
            "victim key": victim,
            "operator token": stack.operator_token,
            "stripe secret key": stack.env["STRIPE_SECRET_KEY"],
            "stripe webhook secret": stack.env["STRIPE_WEBHOOK_SECRET"],
        }
        _seed_billing_objects(sec)
        fingerprint = _module_fingerprint()
        # The stack's environment is applied per test (fixture `security_stack`), not for the package:
        # other suites in this process must keep talking to moto.
        restore_environment(saved)
        _reset_layer_caches()
        yield sec, fingerprint
    finally:
        stack.stop()
        restore_environment(saved)
        _reset_layer_caches(provider=True)


def _seed_billing_objects(sec: SecurityStack) -> None:
    """A customer and a subscription of tenant A for the routes that take their ids (when those routes
    work; otherwise the matrix reports what they answer for unknown ids)."""
    response = sec.call(
        "POST", "/v1/customers", {"tenant_id": TENANT_A, "email": "ada@example.com"}, credential=Credential.OPERATOR
    )
    if response.status in (200, 201):
        sec.customer_id = str(response.json().get("id", sec.customer_id))
        response = sec.call(
            "POST",
            "/v1/subscriptions",
            {"tenant_id": TENANT_A, "price_id": "price_pro_monthly"},
            credential=Credential.OPERATOR,
        )
        if response.status in (200, 201):
            sec.subscription_id = str(response.json().get("id", sec.subscription_id))


@pytest.fixture
def security_stack(
    _started_stack: tuple[SecurityStack, dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> Iterator[SecurityStack]:
    """The started stack with its environment applied for this test (and removed after it)."""
    sec, fingerprint = _started_stack
    for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(key)
    for key, value in sec.env.items():
        monkeypatch.setenv(key, value)
    _reset_layer_caches()
    # Another suite in this process may have reloaded a handler under its own environment.
    current = _module_fingerprint()
    for name, ident in fingerprint.items():
        if current.get(name) != ident and name in sys.modules:
            importlib.reload(sys.modules[name])
            fingerprint[name] = _module_fingerprint()[name]
    _restore_moto_state(sec)
    yield sec
    monkeypatch.undo()
    _reset_layer_caches()


def _restore_moto_state(sec: SecurityStack) -> None:
    """moto's in-process `mock_aws` resets every moto backend when it stops, and the stack's moto server
    runs in this process and shares them: after a moto test on this worker the usage queue is gone.
    Re-create it (same name, same URL) so the stack is whole again."""
    from local_stack.provision import create_queue

    sqs = sec.client("sqs")
    try:
        sqs.get_queue_attributes(QueueUrl=sec.env[resources.USAGE_QUEUE.env_var], AttributeNames=["QueueArn"])
    except sqs.exceptions.QueueDoesNotExist:
        urls = create_queue(sqs, resources.USAGE_QUEUE)
        assert urls[resources.USAGE_QUEUE.env_var] == sec.env[resources.USAGE_QUEUE.env_var], urls
