"""The Stripe side of the platform: the API key and webhook signing secret in Secrets Manager.

CloudFormation creates each secret with a random placeholder; the operator sets the real values after
the first deploy (`aws secretsmanager put-secret-value`, see the README). Functions receive only the
secret ARNs (resources.STRIPE_*_SECRET_ENV) and read the values at cold start with their own grant.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from billing_platform import resources
from infra.nag import acknowledge

ROTATION_REASON = (
    "Stripe keys are issued and rolled in the Stripe dashboard, not by a rotation Lambda; the operator "
    "rolls them there and writes the new value with put-secret-value."
)


class StripeSecrets(Construct):
    """The two Stripe secrets and the environment variables that point functions at them."""

    def __init__(self, scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        self.api_key = secretsmanager.Secret(
            self,
            "StripeApiKey",
            description="Stripe secret API key (sk_live_... / sk_test_...); set by the operator after deploy",
            removal_policy=removal_policy,
        )
        self.webhook_secret = secretsmanager.Secret(
            self,
            "StripeWebhookSecret",
            description="Stripe webhook endpoint signing secret (whsec_...); set by the operator after deploy",
            removal_policy=removal_policy,
        )
        for secret in (self.api_key, self.webhook_secret):
            acknowledge(secret, "AwsSolutions-SMG4", ROTATION_REASON)

    @property
    def environment(self) -> dict[str, str]:
        return {
            resources.STRIPE_API_KEY_SECRET_ENV: self.api_key.secret_arn,
            resources.STRIPE_WEBHOOK_SECRET_ENV: self.webhook_secret.secret_arn,
        }

    def grant_read(self, grantee: iam.IGrantable) -> None:
        for secret in (self.api_key, self.webhook_secret):
            secret.grant_read(grantee)
