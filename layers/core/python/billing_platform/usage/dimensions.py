"""The catalog's cardinality caps on dimension values and entities, enforced where a record enters (the
tracker, `POST /v1/usage`) so a refused record is never written anywhere.

A cap counts the distinct values of one dimension (or entities) per tenant x resource type x calendar
month of the record's timestamp. The first time a process sees a value it registers it in the values
registry (one conditional write that also refuses a value past the cap); values it has seen are admitted
without I/O, so steady traffic costs nothing here.
"""

from __future__ import annotations

import threading
from typing import Protocol

from billing_platform.catalog.models import ENTITY_DIMENSION
from billing_platform.errors import DimensionCapReachedError
from billing_platform.settings import Settings, get_settings
from billing_platform.usage.models import UsageRecord

# Values remembered per process; past this the memory is cleared (re-registering a value is harmless).
MAX_REMEMBERED = 100_000


class ValuesRegistry(Protocol):
    """Registers a value unless `cap` other values are registered; False when full (the repository)."""

    def register_value(
        self, tenant_id: str, resource_type: str, month: str, dimension: str, *, value: str, cap: int
    ) -> bool: ...


def _labels(record: UsageRecord) -> list[tuple[str, str]]:
    out = sorted(record.dimensions.items())
    if record.entity_id is not None:
        out.append((ENTITY_DIMENSION, record.entity_id))
    return out


class DimensionGate:
    """Admits a record's dimension values and entity, or raises `DimensionCapReachedError` (422)."""

    def __init__(self, settings: Settings | None = None, registry: ValuesRegistry | None = None) -> None:
        self._settings = settings or get_settings()
        self._registry = registry
        self._known: set[tuple[str, str, str, str, str]] = set()
        self._lock = threading.Lock()

    @property
    def registry(self) -> ValuesRegistry:
        if self._registry is None:
            from billing_platform.usage.repository import AggregateRepository

            self._registry = AggregateRepository(self._settings)
        return self._registry

    def _keys(self, record: UsageRecord) -> list[tuple[str, str, str, str, str]]:
        month = f"{record.timestamp.year:04d}-{record.timestamp.month:02d}"
        return [(record.tenant_id, record.resource_type, month, d, v) for d, v in _labels(record)]

    def unknown(self, record: UsageRecord) -> bool:
        """True when admitting the record needs I/O (a value this process has not registered)."""
        with self._lock:
            return any(key not in self._known for key in self._keys(record))

    def admit(self, record: UsageRecord) -> None:
        spec = self._settings.catalog.require_resource_type(record.resource_type)
        for key in self._keys(record):
            with self._lock:
                if key in self._known:
                    continue
            tenant, resource, month, dimension, value = key
            cap = spec.cap(dimension)
            if not self.registry.register_value(tenant, resource, month, dimension, value=value, cap=cap):
                what = "entities" if dimension == ENTITY_DIMENSION else f"values of {dimension!r}"
                raise DimensionCapReachedError(
                    f"{resource} already has {cap} distinct {what} for this tenant in {month}: {value!r} is refused",
                    details={"dimension": dimension, "value": value, "cap": cap, "month": month},
                )
            with self._lock:
                if len(self._known) >= MAX_REMEMBERED:
                    self._known.clear()
                self._known.add(key)
