"""billing_platform.clients: the first client of a container skips botocore's scan of every service folder
and, in Lambda, the collector's rescans of the import-time heap. Behaviour, not timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import botocore
import botocore.session
import pytest
from botocore.loaders import Loader

from billing_platform import clients
from tests.factories.cold_start import LAYER_DIR


@pytest.fixture(autouse=True)
def _fresh_clients() -> object:
    clients.reset()
    yield
    clients.reset()


def test_every_factory_builds_its_client_through_the_platform_loader() -> None:
    # A factory for a service missing from clients.SERVICES would fail here with UnknownServiceError.
    built = [
        clients.dynamodb(),
        clients.dynamodb_streams(),
        clients.sqs(),
        clients.secretsmanager(),
        clients.events(),
        clients.apigateway(),
        clients.cloudwatch(),
    ]
    assert sorted(client.meta.service_model.service_name for client in built) == sorted(clients.SERVICES)
    loader = clients._session().get_component("data_loader")
    assert isinstance(loader, clients._PlatformLoader)
    assert loader.list_available_services("service-2") == sorted(clients.SERVICES)


def test_the_loader_still_reads_aws_data_path_first(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    loader = clients._session().get_component("data_loader")
    assert loader.search_paths[0] == str(tmp_path)


def _first_client_freezes(environ: dict[str, str]) -> int:
    code = "import gc\nfrom billing_platform import clients\nclients.dynamodb()\nprint(gc.get_freeze_count())"
    env = {
        "PYTHONPATH": str(LAYER_DIR),
        "PATH": os.environ.get("PATH", ""),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        **environ,
    }
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return int(json.loads(done.stdout.strip().splitlines()[-1]))


def test_in_lambda_the_import_heap_is_frozen_before_the_first_client() -> None:
    assert _first_client_freezes({"LAMBDA_TASK_ROOT": "/var/task"}) > 0


def test_outside_lambda_the_collector_is_left_alone() -> None:
    assert _first_client_freezes({}) == 0


def test_the_shipped_endpoints_are_botocores_own_for_our_services() -> None:
    shipped = json.loads(clients.ENDPOINTS_FILE.read_text())
    loader = Loader()
    prefixes = {loader.load_service_model(s, "service-2")["metadata"]["endpointPrefix"] for s in clients.SERVICES}
    fresh = clients.trimmed_endpoints(loader.load_data("endpoints"), prefixes)
    assert shipped == {"botocore": botocore.__version__, "endpoints": fresh}, (
        "botocore changed: run `.venv/bin/python -m billing_platform.clients` (from layers/core/python)"
    )
    assert all(prefix in fresh["partitions"][0]["services"] for prefix in prefixes)


@pytest.mark.parametrize("region", ["us-east-1", "eu-central-1", "cn-north-1", "us-gov-west-1", "ap-southeast-7"])
def test_clients_resolve_the_same_endpoints_as_plain_botocore(region: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SQS"):
        monkeypatch.delenv(var, raising=False)
    ours = clients._session()
    plain = botocore.session.get_session()
    served, path = ours.get_component("data_loader").load_data_with_path("endpoints")
    assert len(served["partitions"][0]["services"]) == len(clients.SERVICES)  # the shipped cut, as built-in data
    assert path.startswith(Loader.BUILTIN_DATA_PATH)
    for service in clients.SERVICES:
        mine = ours.create_client(service, region_name=region, config=clients._CONFIG)
        theirs = plain.create_client(service, region_name=region, config=clients._CONFIG)
        assert mine.meta.endpoint_url == theirs.meta.endpoint_url, (service, region)
        assert mine.meta.partition == theirs.meta.partition, (service, region)


def test_another_botocore_version_gets_its_own_full_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(botocore, "__version__", "0.0.0")
    endpoints, _ = clients._session().get_component("data_loader").load_data_with_path("endpoints")
    assert len(endpoints["partitions"][0]["services"]) > 100
