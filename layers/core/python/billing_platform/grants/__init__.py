"""Grants: amounts of a resource given to a tenant on top of its plan (operator grants, Stripe top-ups),
drawn after the period quota by the entitlement slow path (`entitlements.past_quota`, their only drawer).

- models.py: grants, draw order and the pure plan of a draw; schemas.py: the HTTP bodies;
  repository.py: the grant items (the only module of the package that reaches DynamoDB);
- service.py: operators create, list and void grants; topups.py: Stripe top-ups become grants, its own
  module because it runs in the Stripe webhook function and service.py in the entitlement one.
"""
