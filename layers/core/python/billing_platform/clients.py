"""AWS clients, created once per container and lazily, so a cold path never pays for a client it
does not use. Endpoints come from botocore's own `AWS_ENDPOINT_URL_<SERVICE>` variables (local stack).

Clients come from a botocore session, the same clients `boto3.client` makes: importing boto3 on top of
botocore costs CPU at every cold start (its resource layer and s3transfer) for nothing used here.

The first client of a container is what a cold start's first request pays most for (`make bench`
prints its share). Two parts of it are not the client's own work, and are cut here:
- botocore lists every service folder it ships (~450, twice) to check that the one asked for exists;
  the session's loader here only looks at the services this module makes clients for.
- botocore parses its 1.25 MB endpoints.json (every service in every partition) to build the
  client's endpoint bridge. The loader here serves the same file cut down to the partitions' own data
  and the services below (botocore_endpoints.json, 30 KB, made by `python -m billing_platform.clients`
  from the installed botocore, and only used with that botocore version).
- In a Lambda container, the garbage collector scans the whole import-time heap (modules, classes,
  pydantic schemas: state that lives as long as the container) again and again while botocore parses its
  endpoint and model JSON. Freezing that heap (`gc.freeze`) before the first client spares those scans.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import botocore
import botocore.session
from botocore.config import Config
from botocore.exceptions import DataNotFoundError
from botocore.loaders import Loader

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

# Standard retry mode already backs off on throttling; no home-made retry loops on top of it.
# account_id_endpoint_mode=disabled: botocore 1.44 otherwise routes DynamoDB to account-specific
# endpoints that emulators do not answer.
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=2,
    read_timeout=10,
    tcp_keepalive=True,
    account_id_endpoint_mode="disabled",
)


# Every service this module makes a client for (the factories below).
SERVICES = ("dynamodb", "dynamodbstreams", "sqs", "secretsmanager", "events", "apigateway", "cloudwatch")


ENDPOINTS_FILE = Path(__file__).with_name("botocore_endpoints.json")


def trimmed_endpoints(endpoints: dict[str, Any], prefixes: set[str]) -> dict[str, Any]:
    """botocore's endpoints data with only the services whose endpoint prefix is in `prefixes`: the
    partitions' own data (regions, defaults, DNS suffixes) is kept whole, so these services resolve alike."""
    partitions = [
        {**partition, "services": {k: v for k, v in partition["services"].items() if k in prefixes}}
        for partition in endpoints["partitions"]
    ]
    return {**endpoints, "partitions": partitions}


def _trimmed_endpoints_file() -> dict[str, Any] | None:
    """The shipped cut of endpoints.json, if it was made from the botocore installed here."""
    try:
        shipped = json.loads(ENDPOINTS_FILE.read_text())
    except (OSError, ValueError):
        return None
    if shipped.get("botocore") != botocore.__version__:
        return None  # another botocore: its own full file
    endpoints: dict[str, Any] = shipped["endpoints"]
    return endpoints


class _PlatformLoader(Loader):
    """botocore's data loader, whose list of known services holds only `SERVICES` (botocore checks a
    service name against that list before loading its model, and builds it by listing every folder of
    its data directory and of AWS_DATA_PATH for each kind of file), and whose endpoints data is the
    shipped cut of it (unless AWS_DATA_PATH brings an endpoints file of its own)."""

    def load_data_with_path(self, name: str) -> tuple[Any, str]:
        if name == "endpoints":
            custom = any(
                self.file_loader.exists(os.path.join(path, name))
                for path in self.search_paths
                if path != self.BUILTIN_DATA_PATH
            )
            trimmed = None if custom else _trimmed_endpoints_file()
            if trimmed is not None:
                # botocore's own path: the session treats the data as built-in, as it is.
                return trimmed, os.path.join(self.BUILTIN_DATA_PATH, name)
        found: tuple[Any, str] = super().load_data_with_path(name)
        return found

    def list_available_services(self, type_name: str) -> list[str]:
        available = []
        for service in SERVICES:
            try:
                self.list_api_versions(service, type_name)
            except DataNotFoundError:
                continue
            available.append(service)
        return sorted(available)  # sorted, as botocore returns it


_heap_frozen = False


def _freeze_import_heap() -> None:
    """Once per Lambda container: move what the imports built out of the collector's sight (gc.freeze)
    before the first client allocates its ~100k short-lived JSON objects. Only in Lambda (LAMBDA_TASK_ROOT,
    Powertools' own test): a long-running process (tests, the local stack's parent) keeps its usual GC."""
    global _heap_frozen
    if not _heap_frozen and os.environ.get("LAMBDA_TASK_ROOT"):
        _heap_frozen = True
        gc.freeze()


@lru_cache(maxsize=1)
def _session() -> botocore.session.Session:
    # One session: its clients share the loaded endpoint and model data.
    _freeze_import_heap()
    session = botocore.session.get_session()
    data_path = session.get_config_variable("data_path")  # AWS_DATA_PATH, as botocore's create_loader reads it
    extra = [os.path.expanduser(os.path.expandvars(p)) for p in data_path.split(os.pathsep)] if data_path else None
    session.register_component("data_loader", _PlatformLoader(extra_search_paths=extra))
    return session


def _client(service: str) -> Any:
    return _session().create_client(service, config=_CONFIG)


@lru_cache(maxsize=1)
def dynamodb() -> DynamoDBClient:
    client: DynamoDBClient = _client("dynamodb")
    return client


@lru_cache(maxsize=1)
def dynamodb_streams() -> DynamoDBStreamsClient:
    client: DynamoDBStreamsClient = _client("dynamodbstreams")
    return client


@lru_cache(maxsize=1)
def sqs() -> SQSClient:
    client: SQSClient = _client("sqs")
    return client


@lru_cache(maxsize=1)
def secretsmanager() -> SecretsManagerClient:
    client: SecretsManagerClient = _client("secretsmanager")
    return client


@lru_cache(maxsize=1)
def events() -> Any:
    # EventBridge (billing events); no type stubs are installed for this service.
    return _client("events")


@lru_cache(maxsize=1)
def apigateway() -> Any:
    # Tenant usage-plan keys (auth.usage_plans); no type stubs are installed for this service.
    return _client("apigateway")


@lru_cache(maxsize=1)
def cloudwatch() -> Any:
    """CloudWatch (metric reads of the freshness figures); none of the hot paths makes one."""
    return _client("cloudwatch")


def reset() -> None:
    """Forget cached clients and their session (tests switch endpoints and credentials between cases)."""
    for factory in (_session, dynamodb, dynamodb_streams, sqs, secretsmanager, apigateway, events):
        factory.cache_clear()


def write_trimmed_endpoints() -> None:
    """(Re)make ENDPOINTS_FILE from the installed botocore (after a botocore upgrade)."""
    loader = Loader()
    prefixes = {loader.load_service_model(s, "service-2")["metadata"]["endpointPrefix"] for s in SERVICES}
    endpoints = trimmed_endpoints(loader.load_data("endpoints"), prefixes)
    ENDPOINTS_FILE.write_text(json.dumps({"botocore": botocore.__version__, "endpoints": endpoints}) + "\n")


if __name__ == "__main__":
    write_trimmed_endpoints()
    print(f"wrote {ENDPOINTS_FILE} (botocore {botocore.__version__})", file=sys.stderr)
