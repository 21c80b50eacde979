"""Per-tenant throttling in API Gateway: each tenant gets one API Gateway API key in the tenant usage
plan, whose value is `usage_identifier_key(tenant)`. The authorizer returns that value as
`usageIdentifierKey` (the API's key source is AUTHORIZER), so API Gateway applies the plan's rate and
burst per tenant, however many platform keys the tenant holds; clients never see or send it.

The only code here speaking to the API Gateway control plane. Idempotent: a tenant already in the plan
costs one lookup.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import ClientError

from billing_platform import clients
from billing_platform.auth.keys import usage_identifier_key

logger = logging.getLogger(__name__)


def usage_key_name(tenant_id: str) -> str:
    return f"tenant-{tenant_id}"


class UsagePlanKeys:
    """Puts a tenant's usage-plan key into a usage plan (created on first need)."""

    def __init__(self, usage_plan_id: str, client: Any = None) -> None:
        self._plan = usage_plan_id
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or clients.apigateway()

    def _find(self, name: str) -> str | None:
        response = self.client.get_api_keys(nameQuery=name, includeValues=False, limit=500)
        for item in response.get("items", []):
            if item.get("name") == name:
                return str(item["id"])
        return None

    def ensure_tenant(self, tenant_id: str) -> str:
        """The API Gateway key id of `tenant_id`'s usage-plan key, created and attached if missing."""
        name = usage_key_name(tenant_id)
        key_id = self._find(name)
        if key_id is None:
            created = self.client.create_api_key(
                name=name,
                description="Per-tenant usage-plan key (throttling); not a credential",
                enabled=True,
                value=usage_identifier_key(tenant_id),
            )
            key_id = str(created["id"])
            logger.info("usage-plan key created", extra={"tenant_id": tenant_id})
        try:
            self.client.create_usage_plan_key(usagePlanId=self._plan, keyId=key_id, keyType="API_KEY")
        except ClientError as exc:
            # Already in the plan: nothing to do.
            if exc.response.get("Error", {}).get("Code") != "ConflictException":
                raise
        return key_id
