"""IAM as API Gateway applies it to a Lambda authorizer's answer: the policy evaluated against the request's
method ARN (an explicit Deny wins, then an Allow, else implicit deny), the context values it passes on, and
the three ways an authorization ends (401, 403, 500). Used by `local_stack.gateway`."""

from __future__ import annotations

import fnmatch
from typing import Any


class AuthorizerDenied(Exception):
    """The authorizer's policy does not allow the method ARN (API Gateway answers 403)."""


class AuthorizerUnauthorized(Exception):
    """The authorizer raised "Unauthorized" (API Gateway answers 401)."""


class AuthorizerBroken(Exception):
    """The authorizer failed or returned something API Gateway rejects (500)."""


def policy_allows(policy: dict[str, Any], arn: str) -> bool:
    """IAM evaluation for execute-api:Invoke: an explicit Deny wins, then an Allow, else implicit deny."""
    statements = policy.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    allowed = False
    for statement in statements:
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if not any(fnmatch.fnmatchcase("execute-api:Invoke", a) for a in actions):
            continue
        targets = statement.get("Resource", [])
        targets = [targets] if isinstance(targets, str) else targets
        if not any(fnmatch.fnmatchcase(arn, t) for t in targets):
            continue
        if statement.get("Effect") == "Deny":
            return False
        if statement.get("Effect") == "Allow":
            allowed = True
    return allowed


def _context_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise AuthorizerBroken("authorizer context values must be strings, numbers or booleans")


def authorizer_context(response: Any, arn: str, latency_ms: int) -> dict[str, Any]:
    """Check a Lambda authorizer response against `arn`; return requestContext.authorizer."""
    if not isinstance(response, dict) or "principalId" not in response or "policyDocument" not in response:
        raise AuthorizerBroken("authorizer response needs principalId and policyDocument")
    if not policy_allows(response["policyDocument"], arn):
        raise AuthorizerDenied(arn)
    context = {k: _context_value(v) for k, v in (response.get("context") or {}).items()}
    return {**context, "principalId": str(response["principalId"]), "integrationLatency": latency_ms}
