"""Grants: amounts of a resource given to a tenant on top of its plan (operator grants, Stripe top-ups),
drawn after the period quota by the entitlement slow path (`entitlements.past_quota`, their only drawer).
"""
