"""AWS clients, created once per container and lazily, so a cold path never pays for a client it
does not use. Endpoints come from boto3's own `AWS_ENDPOINT_URL_<SERVICE>` variables (local stack)."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import boto3
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
def dynamodb() -> DynamoDBClient:
    return boto3.client("dynamodb", config=_CONFIG)


@lru_cache(maxsize=1)
def dynamodb_streams() -> DynamoDBStreamsClient:
    return boto3.client("dynamodbstreams", config=_CONFIG)


@lru_cache(maxsize=1)
def sqs() -> SQSClient:
    return boto3.client("sqs", config=_CONFIG)


@lru_cache(maxsize=1)
def secretsmanager() -> SecretsManagerClient:
    return boto3.client("secretsmanager", config=_CONFIG)


@lru_cache(maxsize=1)
def events() -> Any:
    # EventBridge (billing events); no type stubs are installed for this service.
    return boto3.client("events", config=_CONFIG)


@lru_cache(maxsize=1)
def apigateway() -> Any:
    # Tenant usage-plan keys (auth.usage_plans); no type stubs are installed for this service.
    return boto3.client("apigateway", config=_CONFIG)


def reset() -> None:
    """Forget cached clients (tests switch endpoints and credentials between cases)."""
    for factory in (dynamodb, dynamodb_streams, sqs, secretsmanager, apigateway, events):
        factory.cache_clear()
