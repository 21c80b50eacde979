"""Where the CLI's target stack is: a deployed CloudFormation stack (`--stack-name`: its outputs), the
local stack (endpoint URLs), or plain environment variables; resolved into the layer's `Settings`.

The only CLI code that speaks boto3 for configuration (CloudFormation `DescribeStacks`, SQS
`GetQueueUrl` to find the local stack's DLQ by name)."""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from billing_platform import clients, resources
from billing_platform.errors import ConfigurationError
from billing_platform.settings import Settings, get_settings

# CloudFormation output key (infra/stack.py `_outputs`) -> the environment variable the layer reads.
OUTPUT_ENV: dict[str, str] = {
    **{f"{spec.logical_id}Name": spec.env_var for spec in resources.TABLES},
    "UsageQueueUrl": resources.USAGE_QUEUE.env_var,
    "UsageDlqUrl": resources.USAGE_QUEUE.dlq_env_var,
    "StripeApiKeySecretArn": resources.STRIPE_API_KEY_SECRET_ENV,
    "StripeWebhookSecretArn": resources.STRIPE_WEBHOOK_SECRET_ENV,
}


LOCAL_REGION = "us-east-1"  # local_stack.stack.REGION


@dataclass(frozen=True)
class Target:
    """What the CLI talks to."""

    settings: Settings
    source: str  # "stack:<name>", "local" or "environment"

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {
            "source": self.source,
            "billing_table": s.billing_table_name,
            "aggregates_table": s.aggregates_table_name,
            "usage_dlq": s.usage_dlq_url,
            "stripe": "api key set" if (s.stripe_secret_key or s.stripe_api_key_secret_arn) else "not configured",
        }


def stack_outputs(stack_name: str, *, region: str | None = None, client: Any = None) -> dict[str, str]:
    """The deployed stack's outputs, OutputKey -> OutputValue."""
    cfn = client or boto3.client("cloudformation", region_name=region)
    try:
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except (ClientError, BotoCoreError) as exc:
        raise ConfigurationError(f"cannot read stack {stack_name!r}: {exc}") from None
    if not stacks:
        raise ConfigurationError(f"stack {stack_name!r} not found")
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def resolve_target(
    *,
    stack_name: str | None = None,
    region: str | None = None,
    dynamodb_endpoint: str | None = None,
    sqs_endpoint: str | None = None,
    environ: MutableMapping[str, str] | None = None,
    cloudformation: Any = None,
) -> Target:
    """Export the target's settings to `environ` (default: os.environ, so the layer's own clients and
    `get_settings()` see them) and return them. Precedence: explicit flags > stack outputs > environment."""
    env = os.environ if environ is None else environ
    source = "environment"
    if region:
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = region
    if stack_name:
        outputs = stack_outputs(stack_name, region=region, client=cloudformation)
        missing = [key for key in (f"{resources.BILLING_TABLE.logical_id}Name",) if key not in outputs]
        if missing:
            raise ConfigurationError(f"stack {stack_name!r} has no output {', '.join(missing)}: not a billing stack?")
        for key, var in OUTPUT_ENV.items():
            if key in outputs:
                env[var] = outputs[key]
        env.setdefault("ENVIRONMENT", "production")
        source = f"stack:{stack_name}"
    if dynamodb_endpoint:
        env["AWS_ENDPOINT_URL_DYNAMODB"] = dynamodb_endpoint
        source = "local" if not stack_name else source
    if sqs_endpoint:
        env["AWS_ENDPOINT_URL_SQS"] = sqs_endpoint
        source = "local" if not stack_name else source
    if source == "local":
        # The local stack's emulators accept any credentials and live in its one region; an operator's
        # shell need not be configured for AWS to inspect it.
        env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION", LOCAL_REGION))
        if not env.get("AWS_ACCESS_KEY_ID") and not env.get("AWS_PROFILE"):
            env["AWS_ACCESS_KEY_ID"] = env["AWS_SECRET_ACCESS_KEY"] = "local"
    # The layer caches settings and clients: make them read what was just exported.
    get_settings.cache_clear()
    clients.reset()
    settings = Settings.from_env(dict(env))
    if settings.usage_dlq_url is None and env.get("AWS_ENDPOINT_URL_SQS"):
        settings = settings.model_copy(update={"usage_dlq_url": _queue_url(resources.USAGE_QUEUE.dlq_local_name)})
        env[resources.USAGE_QUEUE.dlq_env_var] = settings.usage_dlq_url or ""
    if settings.usage_queue_url is None and env.get("AWS_ENDPOINT_URL_SQS"):
        settings = settings.model_copy(update={"usage_queue_url": _queue_url(resources.USAGE_QUEUE.local_name)})
        env[resources.USAGE_QUEUE.env_var] = settings.usage_queue_url or ""
    return Target(settings=settings, source=source)


def _queue_url(name: str) -> str | None:
    """The local stack names its queues after `resources` (no prefix)."""
    try:
        return str(clients.sqs().get_queue_url(QueueName=name)["QueueUrl"])
    except (ClientError, BotoCoreError):
        return None


def require(value: str | None, what: str, hint: str) -> str:
    if not value:
        raise ConfigurationError(f"{what} is not configured ({hint})")
    return value


def env_summary(environ: Mapping[str, str]) -> dict[str, str]:
    """The target variables present (values of secrets are never shown)."""
    wanted = {*OUTPUT_ENV.values(), "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SQS", "STRIPE_API_BASE"}
    return {k: environ[k] for k in sorted(wanted) if k in environ}
