"""The caller of an API request, as API Gateway's authorizer established it.

Deployed, operator routes use IAM (SigV4) authorization, so `requestContext.identity.userArn` is set;
tenant routes use the Lambda authorizer, whose context carries `principal_type` and `tenant_id`.
The local stack fills the same fields. Handlers never trust a tenant id from the path or body
without `Caller.require_tenant`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from billing_platform.errors import AuthenticationError, TenantAccessDenied


class PrincipalType(StrEnum):
    OPERATOR = "operator"
    TENANT = "tenant"
    # A portal token: reads one tenant's (or one entity's) data, never writes (billing_platform.portal).
    PORTAL = "portal"


Scope = Literal["use", "admin"]


@dataclass(frozen=True)
class Caller:
    """`scope` and `entity_id` are a tenant key's (an operator has every scope and no entity)."""

    principal_type: PrincipalType
    principal_id: str
    tenant_id: str | None = None
    scope: Scope = "use"
    entity_id: str | None = None

    @property
    def is_operator(self) -> bool:
        return self.principal_type is PrincipalType.OPERATOR

    @property
    def is_portal(self) -> bool:
        return self.principal_type is PrincipalType.PORTAL

    def require_method(self, http_method: str) -> None:
        """Raise `TenantAccessDenied` when a read-only credential (a portal token) asks for anything but a
        read. The authorizer's policy already allows such a token GET routes only; this keeps a handler
        from ever acting on one if a policy were widened by mistake."""
        if self.is_portal and http_method.upper() != "GET":
            raise TenantAccessDenied("a portal token is read-only")

    def require_tenant(self, tenant_id: str) -> None:
        """Raise `TenantAccessDenied` unless this caller may act for `tenant_id`."""
        if self.is_operator:
            return
        if self.tenant_id != tenant_id:
            raise TenantAccessDenied(
                "this API key cannot act for the requested tenant", details={"tenant_id": tenant_id}
            )

    def require_entity(self, entity_id: str) -> None:
        """Raise `TenantAccessDenied` unless this caller is bound to `entity_id` (an entity's portal token
        reading its own entity; a sibling's or the tenant's other entities are refused)."""
        if self.entity_id != entity_id:
            raise TenantAccessDenied("this credential reads only its own entity", details={"entity_id": entity_id})

    def require_operator(self) -> None:
        if not self.is_operator:
            raise TenantAccessDenied("this route needs an operator credential")


def require_scope(caller: Caller, scope: Scope) -> None:
    """Raise `TenantAccessDenied` unless `caller` holds `scope`: an operator holds every scope, a tenant
    key its own (`admin` includes `use`). Which tenant it may act for is `Caller.require_tenant`'s."""
    if caller.is_operator or caller.scope == scope or caller.scope == "admin":
        return
    raise TenantAccessDenied(f"this API key lacks the `{scope}` scope", details={"scope": scope})


def require_portal_minter(caller: Caller, tenant_id: str) -> None:
    """Raise `TenantAccessDenied` unless `caller` may mint, list or revoke portal tokens of `tenant_id`: the
    operator, for any tenant; a tenant API key with the `admin` scope, for its own tenant. A portal token
    never may (it is read-only), nor a `use` key."""
    if caller.is_operator:
        return
    if caller.principal_type is not PrincipalType.TENANT or caller.scope != "admin":
        raise TenantAccessDenied(
            "minting a portal token needs the operator or an admin API key", details={"tenant_id": tenant_id}
        )
    caller.require_tenant(tenant_id)


@dataclass(frozen=True)
class Actor:
    """Who asks (for the audit log) and under which request (API Gateway request id)."""

    principal_id: str
    request_id: str | None = None
    idempotency_key: str | None = None


def caller_from_request_context(request_context: dict[str, Any] | None) -> Caller:
    """Fail closed: a request with no recognisable principal is unauthenticated."""
    ctx = request_context or {}
    authorizer = ctx.get("authorizer") or {}
    principal_type = authorizer.get("principal_type")
    if principal_type == PrincipalType.TENANT and authorizer.get("tenant_id"):
        return Caller(
            PrincipalType.TENANT,
            str(authorizer.get("principalId") or authorizer.get("key_id") or authorizer["tenant_id"]),
            str(authorizer["tenant_id"]),
            # Fail closed: only an exact "admin" grants it.
            scope="admin" if authorizer.get("scope") == "admin" else "use",
            entity_id=str(authorizer["entity_id"]) if authorizer.get("entity_id") else None,
        )
    if principal_type == PrincipalType.PORTAL and authorizer.get("tenant_id"):
        return Caller(
            PrincipalType.PORTAL,
            str(authorizer.get("principalId") or authorizer.get("token_id")),
            str(authorizer["tenant_id"]),
            entity_id=str(authorizer["entity_id"]) if authorizer.get("entity_id") else None,
        )
    if principal_type == PrincipalType.OPERATOR:
        return Caller(PrincipalType.OPERATOR, str(authorizer.get("principalId") or "operator"))
    user_arn = (ctx.get("identity") or {}).get("userArn")
    if user_arn:
        return Caller(PrincipalType.OPERATOR, str(user_arn))
    raise AuthenticationError("no credential was presented for this route")
