"""Portal tokens: short-lived, read-only credentials for one tenant (optionally one entity), minted by the
operator for a tenant's own customers to look at their usage (the tenant portal page, the `<billing-usage>`
widget). `models.py` the token and its material (pure), `repository.py` its items, `service.py` mint /
list / revoke / authenticate and who may mint, `schemas.py` the HTTP shapes; `pages.py` serves the
bundled pages that use the tokens (no I/O but file reads, hence beside the house shape)."""
