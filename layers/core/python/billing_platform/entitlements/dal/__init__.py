"""Entitlement data access (DynamoDB), one module per kind of item or write.

`EntitlementRepository` (entitlements/repository.py) is these pieces put together; use cases talk to
it, never to boto3. `items` holds keys and item codecs, `table` the request plumbing shared by all.
"""
