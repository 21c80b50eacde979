"""Fixtures shared by every suite: a clean fake-AWS environment, moto, and Amazon's DynamoDB Local."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import settings

from billing_platform import clients, resources
from billing_platform.settings import get_settings
from tests.factories.local_stack_process import stack_fixture

# Speed lives in `make bench`, never in a test's verdict: Hypothesis' default 200 ms deadline per example
# failed property tests on a loaded 2-core runner.
settings.register_profile("billing", deadline=None)
settings.load_profile("billing")

# Never reach a real account: fake credentials and region before any boto3 client exists.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "billing-test",
        "POWERTOOLS_METRICS_NAMESPACE": "BillingTest",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "ENVIRONMENT": "test",
    }
)
for _var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SQS"):
    os.environ.pop(_var, None)


def reset_caches() -> None:
    """Forget settings and clients so the next use reads the environment the test set."""
    # Imported here: the layer's Powertools objects must be created after the environment above is set.
    from billing_platform.enforcer import shared_service

    get_settings.cache_clear()
    clients.reset()
    shared_service.reset()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """monkeypatch for environment variables, with settings/clients caches reset before and after."""
    reset_caches()
    yield monkeypatch
    monkeypatch.undo()
    reset_caches()


@pytest.fixture
def moto_aws(env: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """moto with every table and the usage queue (+ DLQ) created from the resource definitions.
    Yields env var -> name/URL, already exported to the environment."""
    import boto3
    from moto import mock_aws

    from local_stack.provision import create_queue, create_tables

    # moto answers in this process only: an endpoint left in the environment by a stack started earlier in
    # this worker would send the layer's clients to a server that is gone.
    for var in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
        env.delenv(var)
    with mock_aws():
        names = create_tables(boto3.client("dynamodb", region_name="us-east-1"))
        names.update(create_queue(boto3.client("sqs", region_name="us-east-1"), resources.USAGE_QUEUE))
        for key, value in names.items():
            env.setenv(key, value)
        reset_caches()
        yield names
        reset_caches()


@pytest.fixture(scope="session")
def dynamodb_local() -> Iterator[Any]:
    """One DynamoDB Local process for the whole session (3-4 s to start)."""
    from local_stack.dynamodb_local import DynamoDBLocal

    with DynamoDBLocal() as ddb:
        yield ddb


@pytest.fixture
def ddb_local_tables(dynamodb_local: Any, env: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Fresh tables (unique prefix) on DynamoDB Local, exported to the environment and boto3's
    endpoint variable so the layer's own clients talk to it."""
    from local_stack.provision import create_tables

    prefix = f"t{uuid.uuid4().hex[:8]}-"
    names = create_tables(dynamodb_local.client("dynamodb"), prefix=prefix)
    env.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_local.endpoint_url)
    env.setenv("AWS_ENDPOINT_URL_DYNAMODBSTREAMS", dynamodb_local.endpoint_url)
    for key, value in names.items():
        env.setenv(key, value)
    reset_caches()
    yield names
    reset_caches()


# `python -m local_stack` over HTTP for each test module (a package's conftest may share one per package).
stack = stack_fixture("module")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Make `--dist loadgroup` honour `xdist_group` marks again. pytest 9 derives `Item.nodeid` from
    `Item._id`, while pytest-xdist 3.8 still renames `Item._nodeid` to add the `@group` suffix its
    scheduler groups by: without this, grouped tests (one shared server per group) spread over workers."""
    if not getattr(config.option, "loadgroup", False):
        return
    from _pytest.nodeid import NodeId

    for item in items:
        names = {
            str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")
        }
        if names and not item.nodeid.endswith("@" + "_".join(sorted(names))):
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(sorted(names))}")
