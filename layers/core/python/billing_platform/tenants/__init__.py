"""The tenant directory: every tenant that got an API key or a billing customer, for the operator console.
`repository.py` its items (written inside those two transactions), `service.py` a page of tenants with each
one's plan and status as the entitlements see them, `schemas.py` the HTTP shape. No models module: a
tenant id is the whole entry."""
