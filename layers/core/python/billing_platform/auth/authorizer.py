"""The REQUEST Lambda authorizer for tenant routes: `Authorization: Bearer <key>` -> tenant identity.

One strongly consistent GetItem per uncached call (the key's SHA-256 is the item key). A valid key gets
an Allow policy for every tenant route of the API in the request's stage, with path parameters
wildcarded, so the result API Gateway caches (keyed on the Authorization header) is valid whichever
tenant route comes next. Tenant routes still call `Caller.require_tenant`: the policy says "this is a
valid key of tenant T", the handler decides whether T may touch the tenant in the path or body.

Revocation takes effect on the next uncached call: with an authorizer result TTL of N seconds a revoked
key keeps working for at most N seconds (resources.AUTHORIZER_CACHE_TTL_SECONDS, 60 s).

Only the Authorization header is read. An `x-api-key` fallback is deliberately not offered: with result
caching API Gateway rejects a request missing any identity source before calling the authorizer, and
`x-api-key` is API Gateway's own usage-plan header, which would blur which key a client is presenting.
"""

from __future__ import annotations

import hmac
import logging
import re
from datetime import datetime
from typing import Any

from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
    APIGatewayAuthorizerResponse,
)

from billing_platform import resources
from billing_platform.auth.caller import PrincipalType
from billing_platform.auth.keys import usage_identifier_key
from billing_platform.auth.service import ApiKeyService
from billing_platform.errors import UnauthorizedError
from billing_platform.portal.models import ALLOWED_ORIGINS_CONTEXT, PortalToken, is_portal_token
from billing_platform.portal.service import PortalTokenService
from billing_platform.settings import Settings, get_settings

logger = logging.getLogger(__name__)

_BEARER = re.compile(r"^\s*Bearer\s+(\S+)\s*$", re.IGNORECASE)
# A platform key is 68 characters; anything much longer is not worth hashing.
_MAX_CREDENTIAL_LENGTH = 256


def bearer_token(headers: Any) -> str | None:
    """The credential of an `Authorization: Bearer <token>` header (case-insensitive lookup)."""
    value = headers.get("Authorization") if headers else None
    if not isinstance(value, str) or len(value) > _MAX_CREDENTIAL_LENGTH + 16:
        return None
    match = _BEARER.match(value)
    return match.group(1) if match else None


def tenant_route_resources(scope: str = "admin") -> list[tuple[str, str]]:
    """(method, resource pattern) of every tenant route a key of `scope` may call (`admin` includes `use`),
    path parameters replaced by `*`."""
    return [
        (route.method, re.sub(r"\{[^}/]+\}", "*", route.path))
        for route, _fn in resources.routes()
        if route.auth is resources.Auth.TENANT and (route.scope == "use" or scope == "admin")
    ]


def operator_token_matches(presented: str | None, settings: Settings | None = None) -> bool:
    """Local stack only: does `presented` equal the configured operator token (constant-time compare)?
    Always False in production, where operator routes use IAM authorization instead."""
    settings = settings or get_settings()
    expected = settings.operator_token
    if settings.is_production or not expected or not presented:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


def portal_route_resources(token: PortalToken) -> list[tuple[str, str]]:
    """(method, resource) a portal token may call (`resources.portal_routes`), with its tenant id, and for an
    entity-scoped token its entity id, written into the resource, so the cached policy cannot reach another
    tenant or a sibling entity; any other path parameter wildcarded."""
    allowed: list[tuple[str, str]] = []
    for route in resources.portal_routes(entity=token.entity_id is not None):
        path = route.path.replace("{tenant_id}", token.tenant_id)
        if token.entity_id is not None:
            path = path.replace("{entity_id}", token.entity_id)
        allowed.append((route.method, re.sub(r"\{[^}/]+\}", "*", path)))
    return allowed


class TenantKeyAuthorizer:
    """Turns an authorizer REQUEST event into an IAM policy response, or raises `UnauthorizedError`.
    Tenant API keys get every tenant route; portal tokens (`bpt_...`) get their tenant's reads only."""

    def __init__(
        self,
        service: ApiKeyService | None = None,
        settings: Settings | None = None,
        portal: PortalTokenService | None = None,
    ) -> None:
        self._settings = settings or get_settings()
        self._service = service or ApiKeyService(self._settings)
        self._portal = portal

    def _portal_tokens(self) -> PortalTokenService:
        if self._portal is None:
            self._portal = PortalTokenService(self._settings)
        return self._portal

    def authorize(self, event: APIGatewayAuthorizerRequestEvent, now: datetime | None = None) -> dict[str, Any]:
        presented = bearer_token(event.headers)
        if presented is None:
            logger.info("authorizer denied", extra={"reason": "no bearer credential"})
            raise UnauthorizedError()
        if is_portal_token(presented):
            return self._authorize_portal(event, presented, now)
        key = self._service.authenticate(presented, now=now)
        if key is None:
            # Never log the presented value; its (non-secret) id part is enough to trace a leaked key.
            logger.info("authorizer denied", extra={"reason": "unknown, revoked or expired key"})
            raise UnauthorizedError()
        response = APIGatewayAuthorizerResponse.from_route_arn(
            event.method_arn,
            principal_id=key.key_id,
            context={
                "principal_type": PrincipalType.TENANT.value,
                "tenant_id": key.tenant_id,
                "key_id": key.key_id,
                "scope": key.scope,
                # Authorizer context values are strings: "" for a key bound to no entity.
                "entity_id": key.entity_id or "",
            },
            usage_identifier_key=usage_identifier_key(key.tenant_id),
        )
        for method, resource in tenant_route_resources(key.scope):
            response.allow_route(http_method=method, resource=resource)
        # extra, not append_keys: this child logger's parent may not exist yet (Powertools raises then), and
        # a logging quirk must never turn into an authorizer failure (a 500 for every tenant request).
        logger.info("authorizer allowed", extra={"key_id": key.key_id, "tenant_id": key.tenant_id})
        return response.asdict()

    def _authorize_portal(
        self, event: APIGatewayAuthorizerRequestEvent, presented: str, now: datetime | None
    ) -> dict[str, Any]:
        token = self._portal_tokens().authenticate(presented, now=now)
        if token is None:
            logger.info("authorizer denied", extra={"reason": "unknown, revoked or expired portal token"})
            raise UnauthorizedError()
        context: dict[str, Any] = {
            "principal_type": PrincipalType.PORTAL.value,
            "tenant_id": token.tenant_id,
            "token_id": token.token_id,
        }
        if token.entity_id is not None:
            context["entity_id"] = token.entity_id
        if token.allowed_origins:
            # Context values are strings: space-separated (an origin holds no space). billing_platform.api.cors
            context[ALLOWED_ORIGINS_CONTEXT] = " ".join(token.allowed_origins)
        response = APIGatewayAuthorizerResponse.from_route_arn(
            event.method_arn,
            principal_id=token.token_id,
            context=context,
            usage_identifier_key=usage_identifier_key(token.tenant_id),
        )
        allowed = portal_route_resources(token)
        for method, resource in allowed:
            response.allow_route(http_method=method, resource=resource)
        if not allowed:
            # An entity token before any entity route exists: a policy with no statement is malformed, so
            # deny explicitly (API Gateway answers 403).
            response.deny_all_routes()
        logger.info("authorizer allowed portal token", extra={"token_id": token.token_id, "tenant_id": token.tenant_id})
        return response.asdict()
