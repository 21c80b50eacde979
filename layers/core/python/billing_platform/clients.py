"""AWS clients, created once per container and lazily, so a cold path never pays for a client it
does not use. Endpoints come from botocore's own `AWS_ENDPOINT_URL_<SERVICE>` variables (local stack).

Clients come from a botocore session, the same clients `boto3.client` makes: importing boto3 on top of
botocore costs ~15 ms of CPU per cold start (its resource layer and s3transfer) for nothing used here."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import botocore.session
from botocore.config import Config

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


@lru_cache(maxsize=1)
def _session() -> botocore.session.Session:
    # One session: its clients share the loaded endpoint and model data.
    return botocore.session.get_session()


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


def reset() -> None:
    """Forget cached clients and their session (tests switch endpoints and credentials between cases)."""
    for factory in (_session, dynamodb, dynamodb_streams, sqs, secretsmanager, apigateway, events):
        factory.cache_clear()
