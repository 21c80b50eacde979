"""Use cases: a tenant's entities, their limits and key bindings, managed by an operator or by the tenant's
own admin-scoped key (the caller decides which tenant; this service never widens it). Every change is
one transaction with its audit entry; bad input (an unknown entity, a self-parent, a fourth level, a share
above 100 %, a window not shorter than the billing period) is refused before anything is written."""

from __future__ import annotations

import builtins
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from billing_platform.audit.log import AuditEntry, AuditLog
from billing_platform.auth.caller import Actor
from billing_platform.auth.models import ApiKey
from billing_platform.auth.repository import ApiKeyRepository
from billing_platform.catalog.models import Catalog, QuotaPolicy
from billing_platform.dynamodb import utc_now
from billing_platform.entities.models import (
    MAX_DEPTH,
    MAX_SHARE_PERCENT,
    Entity,
    EntityLimit,
    LimitKind,
    LimitTerms,
    LimitWrite,
    valid_entity_id,
)
from billing_platform.entities.repository import EntityRepository
from billing_platform.errors import ConflictError, NotFoundError, UnprocessableError
from billing_platform.settings import Settings, get_settings


class PlanView(Protocol):
    """What this service reads of a tenant's plan."""

    @property
    def plan_id(self) -> str: ...
    @property
    def period_start(self) -> datetime: ...
    @property
    def period_end(self) -> datetime: ...


class PlanSource(Protocol):
    """The tenant's plan and the catalog (an `EntitlementService`): given, so entities never import the
    entitlement package, which imports entities for its take."""

    @property
    def catalog(self) -> Catalog: ...
    def plan_for(self, tenant_id: str) -> PlanView: ...


def _unknown(entity_id: str) -> UnprocessableError:
    return UnprocessableError(f"unknown entity {entity_id!r}", code="unknown_entity", details={"entity_id": entity_id})


class EntityService:
    """Entities, limits and key bindings of one tenant at a time (see the module docstring)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        plans: PlanSource,
        repository: EntityRepository | None = None,
        keys: ApiKeyRepository | None = None,
    ) -> None:
        self._settings = settings or get_settings()
        self._repo = repository or EntityRepository(self._settings)
        self._entitlements = plans
        self._keys = keys or ApiKeyRepository(self._settings)
        self._audit = AuditLog(self._settings)

    @property
    def repository(self) -> EntityRepository:
        return self._repo

    # --- entities -----------------------------------------------------------------------------

    def create(
        self,
        tenant_id: str,
        entity_id: str,
        *,
        actor: Actor,
        parent_id: str | None = None,
        kind: str | None = None,
        name: str | None = None,
        now: datetime | None = None,
    ) -> Entity:
        """A new entity of a known tenant, under `parent_id` (an existing entity of the same tenant, at most
        MAX_DEPTH - 1 deep) or directly under the tenant. 409 when the id is taken."""
        moment = now or utc_now()
        if not valid_entity_id(entity_id):
            raise UnprocessableError("entity id: letters, digits and _ . : @ - (at most 128)", code="invalid_entity_id")
        self._entitlements.plan_for(tenant_id)  # 404 for a tenant the platform does not know
        ancestors: tuple[str, ...] = ()
        if parent_id is not None:
            if parent_id == entity_id:
                raise UnprocessableError(
                    "an entity cannot be its own parent", code="entity_cycle", details={"entity_id": entity_id}
                )
            parent = self._repo.get(tenant_id, parent_id)
            if parent is None:
                raise _unknown(parent_id)
            if entity_id in parent.chain:
                raise UnprocessableError("parents would form a cycle", code="entity_cycle")
            if parent.depth >= MAX_DEPTH:
                raise UnprocessableError(
                    f"at most {MAX_DEPTH} levels under a tenant: {parent_id!r} is already at level {parent.depth}",
                    code="entity_too_deep",
                    details={"parent_id": parent_id, "max_depth": MAX_DEPTH},
                )
            ancestors = parent.chain
        entity = Entity(tenant_id, entity_id, moment, parent_id, ancestors, kind, name)
        entry = AuditEntry.by(actor, tenant_id, "entity.created", entity_id, after=entity.to_dict(), at=moment)
        if not self._repo.create(entity, self._audit.put_item_request(entry)):
            if self._repo.get(tenant_id, entity_id) is not None:
                raise ConflictError(f"entity {entity_id!r} exists", code="entity_exists")
            raise _unknown(parent_id or entity_id)  # the parent was deleted meanwhile
        return entity

    def get(self, tenant_id: str, entity_id: str) -> Entity:
        entity = self._repo.get(tenant_id, entity_id)
        if entity is None:
            raise NotFoundError(f"no entity {entity_id!r} for this tenant", code="entity_not_found")
        return entity

    def list(
        self, tenant_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[builtins.list[Entity], str | None]:
        return self._repo.list(tenant_id, limit=limit, cursor=cursor)

    def update(self, tenant_id: str, entity_id: str, *, actor: Actor, kind: str | None, name: str | None) -> Entity:
        """Change an entity's kind and name (its parent is fixed at creation)."""
        entity = self.get(tenant_id, entity_id)
        changed = replace(entity, kind=kind, name=name)
        entry = AuditEntry.by(
            actor, tenant_id, "entity.updated", entity_id, before=entity.to_dict(), after=changed.to_dict()
        )
        if not self._repo.rename(changed, self._audit.put_item_request(entry)):
            raise NotFoundError(f"no entity {entity_id!r} for this tenant", code="entity_not_found")
        return changed

    def delete(self, tenant_id: str, entity_id: str, *, actor: Actor) -> Entity:
        """Remove an entity and its limits; 409 while it has children or bound keys."""
        entity = self.get(tenant_id, entity_id)
        if entity.children or entity.keys:
            raise ConflictError(
                "an entity with children or bound keys cannot be deleted",
                code="entity_in_use",
                details={"children": entity.children, "bound_keys": entity.keys},
            )
        entry = AuditEntry.by(actor, tenant_id, "entity.deleted", entity_id, before=entity.to_dict())
        if not self._repo.delete(entity, self._audit.put_item_request(entry)):
            raise ConflictError("the entity changed meanwhile; read it and try again", code="entity_in_use")
        return entity

    # --- limits -------------------------------------------------------------------------------

    def set_limit(
        self, tenant_id: str, entity_id: str, resource_type: str, terms: LimitTerms, *, actor: Actor
    ) -> EntityLimit:
        """Set (create or change) an entity's limit on a resource. A share is resolved against what the
        parent may use now: the nearest ancestor's limit on the resource, else the tenant's plan quota."""
        self._entitlements.catalog.require_resource_type(resource_type)
        entity = self.get(tenant_id, entity_id)
        plan = self._entitlements.plan_for(tenant_id)
        period_seconds = (plan.period_end - plan.period_start).total_seconds()
        for window in terms.windows:
            if window.seconds >= period_seconds:
                raise UnprocessableError(
                    f"a {window.value} window is not shorter than the billing period",
                    code="window_too_long",
                    details={"window": window.value},
                )
        basis = None
        if terms.kind is LimitKind.SHARE:
            if terms.share_percent is None or not (0 < terms.share_percent <= MAX_SHARE_PERCENT):
                raise UnprocessableError("share_percent must be above 0 and at most 100", code="invalid_share")
            basis = self._basis(tenant_id, entity, resource_type, plan.plan_id)
        elif terms.amount is None:
            raise UnprocessableError("an absolute limit needs an amount", code="invalid_limit")
        limit = terms.resolve(basis)
        existing = self._repo.get_limit(tenant_id, entity_id, resource_type)
        entry = AuditEntry.by(
            actor,
            tenant_id,
            "entity.limit_set",
            f"{entity_id}/{resource_type}",
            before=existing.to_dict() if existing else None,
            after={
                "resource_type": resource_type,
                "kind": terms.kind.value,
                "limit": str(limit),
                "windows": {w.value: str(v) for w, v in terms.windows.items()},
            },
        )
        # A period already over (no renewal yet) is rolled by the first take, as the tenant's counters are.
        write = LimitWrite(tenant_id, entity_id, resource_type, terms, limit, plan.period_start, plan.period_end)
        written = self._repo.put_limit(write, existing, self._audit.put_item_request(entry))
        if not written:
            raise ConflictError("the entity or its limit changed meanwhile; try again", code="entity_changed")
        stored = self._repo.get_limit(tenant_id, entity_id, resource_type)
        if stored is None:
            raise ConflictError("the limit was removed meanwhile", code="entity_changed")
        if entity.children:
            self.resolve_shares(tenant_id, actor=actor, resource_type=resource_type)
        return stored

    def resolve_shares(
        self, tenant_id: str, *, actor: Actor, resource_type: str | None = None
    ) -> builtins.list[EntityLimit]:
        """Resolve every share limit of the tenant again against what its parent may use now (the nearest
        limited ancestor's limit, else the plan quota), shallowest first so a share of a share follows its
        parent's new limit. Run when a limit that is some share's basis is set or removed, and when a plan is
        applied: a child's share always follows its parent. Each changed limit keeps what its period used
        (`remaining = limit - used`, atomically with takes) and is written with its audit entry. Returns the
        limits changed."""
        plan = self._entitlements.plan_for(tenant_id)
        entities: builtins.list[Entity] = []
        cursor: str | None = None
        while True:
            page, cursor = self._repo.list(tenant_id, limit=100, cursor=cursor)
            entities += page
            if cursor is None:
                break
        changed: builtins.list[EntityLimit] = []
        for entity in sorted(entities, key=lambda e: e.depth):
            for resource in sorted(entity.limited):
                if resource_type is not None and resource != resource_type:
                    continue
                existing = self._repo.get_limit(tenant_id, entity.entity_id, resource)
                if existing is None or existing.terms.kind is not LimitKind.SHARE:
                    continue
                try:
                    limit = existing.terms.resolve(self._basis(tenant_id, entity, resource, plan.plan_id))
                except UnprocessableError:
                    continue  # no basis any more (an unlimited plan): the share keeps its last limit
                if limit == existing.limit:
                    continue
                entry = AuditEntry.by(
                    actor,
                    tenant_id,
                    "entity.limit_resolved",
                    f"{entity.entity_id}/{resource}",
                    before=existing.to_dict(),
                    after={"resource_type": resource, "kind": existing.terms.kind.value, "limit": str(limit)},
                )
                write = LimitWrite(
                    tenant_id, entity.entity_id, resource, existing.terms, limit, plan.period_start, plan.period_end
                )
                if self._repo.put_limit(write, existing, self._audit.put_item_request(entry)):
                    changed.append(replace(existing, limit=limit, remaining=limit - existing.used))
        return changed

    def _basis(self, tenant_id: str, entity: Entity, resource_type: str, plan_id: str) -> Decimal:
        for ancestor in entity.ancestors:
            found = self._repo.get_limit(tenant_id, ancestor, resource_type)
            if found is not None:
                return found.limit
        quota = self._entitlements.catalog.plan(plan_id).quota(resource_type)
        if quota is None or quota.policy is QuotaPolicy.UNLIMITED or quota.limit is None:
            raise UnprocessableError(
                "a share needs a limited parent: no ancestor limits this resource and the plan does not either",
                code="share_without_basis",
            )
        return quota.limit

    def limits(self, tenant_id: str, entity_id: str) -> builtins.list[EntityLimit]:
        self.get(tenant_id, entity_id)
        return self._repo.limits_of(tenant_id, entity_id)

    def delete_limit(self, tenant_id: str, entity_id: str, resource_type: str, *, actor: Actor) -> EntityLimit:
        existing = self._repo.get_limit(tenant_id, entity_id, resource_type)
        if existing is None:
            raise NotFoundError(f"entity {entity_id!r} has no limit on {resource_type!r}", code="limit_not_found")
        entry = AuditEntry.by(
            actor, tenant_id, "entity.limit_removed", f"{entity_id}/{resource_type}", before=existing.to_dict()
        )
        if not self._repo.delete_limit(tenant_id, entity_id, resource_type, self._audit.put_item_request(entry)):
            raise NotFoundError(f"entity {entity_id!r} has no limit on {resource_type!r}", code="limit_not_found")
        if self.get(tenant_id, entity_id).children:
            self.resolve_shares(tenant_id, actor=actor, resource_type=resource_type)
        return existing

    # --- key bindings -------------------------------------------------------------------------

    def bind_key(self, tenant_id: str, key_id: str, entity_id: str | None, *, actor: Actor) -> ApiKey:
        """Bind a key of the tenant to one of its entities (None: unbind): that key's consumes count there
        when they name no entity. Takes effect within the authorizer's cache time."""
        found = self._keys.hash_for_key_id(key_id)
        key = self._keys.get_by_hash(found[1]) if found and found[0] == tenant_id else None
        if key is None or key.revoked_at is not None:
            raise NotFoundError("no such API key for this tenant", details={"key_id": key_id})
        if entity_id is not None and self._repo.get(tenant_id, entity_id) is None:
            raise _unknown(entity_id)
        if key.entity_id == entity_id:
            return key
        bound = replace(key, entity_id=entity_id)
        entry = AuditEntry.by(
            actor,
            tenant_id,
            "api_key.bound",
            key_id,
            before={"entity_id": key.entity_id},
            after={"entity_id": entity_id},
        )
        assert found is not None
        update = self._keys.binding_update(found[1], tenant_id, key.entity_id, entity_id)
        if not self._repo.bind_key(tenant_id, update, key.entity_id, entity_id, self._audit.put_item_request(entry)):
            raise ConflictError("the key or the entity changed meanwhile; try again", code="entity_changed")
        return bound
