"""Grants: amounts of a resource given to a tenant on top of its plan (operator grants, Stripe top-ups),
drawn after the period quota by the entitlement slow path.

Grants build on the entitlement models and the entitlement use cases draw grants, so the two packages
import each other; loading `billing_platform.entitlements` first, whichever of the two a caller imports,
keeps that cycle well-ordered."""

import billing_platform.entitlements  # noqa: F401
