"""Use case: operators register, list and delete a tenant's webhook endpoints (each mutation audited in
the same transaction). The signing secret is generated here and returned once, by create."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

from billing_platform import resources
from billing_platform.audit.log import AuditEntry, AuditLog
from billing_platform.auth.caller import Actor
from billing_platform.errors import ConflictError, NotFoundError, ValidationError
from billing_platform.settings import Settings, get_settings
from billing_platform.tenant_webhooks.models import ALL_EVENTS, CreatedEndpoint, WebhookEndpoint
from billing_platform.tenant_webhooks.repository import WebhookEndpointRepository
from billing_platform.tenant_webhooks.signing import generate_secret

MAX_ENDPOINTS_PER_TENANT = 16
MAX_URL_LENGTH = 2048
_LOOPBACK_NAMES = {"localhost"}


def new_endpoint_id() -> str:
    return "we_" + secrets.token_hex(8)


def check_url(url: str, *, production: bool) -> str:
    """An absolute https URL without credentials or fragment. Outside production, plain http to a loopback
    address is allowed too (a developer's local receiver)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port  # raises on a malformed port
    except ValueError:
        raise ValidationError("url is not a valid URL", code="invalid_webhook_url") from None
    del port
    if parts.username or parts.password:
        raise ValidationError("url must not carry credentials", code="invalid_webhook_url")
    if parts.fragment or not host:
        raise ValidationError("url must be absolute, with a host and no fragment", code="invalid_webhook_url")
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and not production and _loopback(host):
        return url
    raise ValidationError("url must use https", code="invalid_webhook_url")


def _loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_event_types(enabled: list[str]) -> tuple[str, ...]:
    unknown = sorted(set(enabled) - {*resources.EVENT_TYPES, ALL_EVENTS})
    if unknown:
        raise ValidationError(
            f"unknown event types {unknown}; known: {', '.join(resources.EVENT_TYPES)} or '*'",
            code="unknown_event_type",
        )
    return tuple(dict.fromkeys(enabled)) or (ALL_EVENTS,)


class WebhookEndpointService:
    def __init__(
        self,
        settings: Settings | None = None,
        repository: WebhookEndpointRepository | None = None,
        audit: AuditLog | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings or get_settings()
        self._repository = repository or WebhookEndpointRepository(self._settings)
        self._audit = audit or AuditLog(self._settings)
        self._clock = clock

    def create(
        self,
        tenant_id: str,
        *,
        url: str,
        enabled_events: list[str],
        description: str | None,
        actor: Actor,
    ) -> CreatedEndpoint:
        """A new endpoint with a fresh signing secret (returned here only). Bad input changes nothing."""
        checked_url = check_url(url, production=self._settings.is_production)
        events = check_event_types(enabled_events)
        if len(self._repository.endpoints(tenant_id)) >= MAX_ENDPOINTS_PER_TENANT:
            raise ConflictError(
                f"a tenant has at most {MAX_ENDPOINTS_PER_TENANT} webhook endpoints", code="too_many_endpoints"
            )
        now = self._clock()
        endpoint = WebhookEndpoint(
            endpoint_id=new_endpoint_id(),
            tenant_id=tenant_id,
            url=checked_url,
            description=description,
            enabled_events=events,
            created_at=now,
            created_by=actor.principal_id,
        )
        secret = generate_secret()
        entry = AuditEntry.by(
            actor, tenant_id, "webhook_endpoint.created", endpoint.endpoint_id, after=endpoint.to_dict(), at=now
        )
        self._repository.create(endpoint, secret, self._audit.put_item_request(entry))
        return CreatedEndpoint(endpoint, secret)

    def endpoints(self, tenant_id: str) -> list[WebhookEndpoint]:
        return sorted(self._repository.endpoints(tenant_id), key=lambda e: (e.created_at, e.endpoint_id))

    def delete(self, tenant_id: str, endpoint_id: str, *, actor: Actor) -> WebhookEndpoint:
        """Delete an endpoint of `tenant_id` (404 for an unknown one or another tenant's); events not yet
        delivered to it are dropped for it."""
        endpoint = self._repository.get(tenant_id, endpoint_id)
        if endpoint is None:
            raise NotFoundError("no such webhook endpoint for this tenant", details={"endpoint_id": endpoint_id})
        entry = AuditEntry.by(
            actor, tenant_id, "webhook_endpoint.deleted", endpoint_id, before=endpoint.to_dict(), at=self._clock()
        )
        if not self._repository.delete(endpoint, self._audit.put_item_request(entry)):
            raise NotFoundError("no such webhook endpoint for this tenant", details={"endpoint_id": endpoint_id})
        return endpoint
