"""Who is calling: operators and tenant API keys.

- models.py: API keys as stored (metadata only); schemas.py: the API's shapes; keys.py: key material (generation,
  id, hash; pure); repository.py: the key items (the only module that reaches DynamoDB);
- service.py: create, list, revoke and authenticate keys; authorizer.py: the REQUEST authorizer's use
  case, its own module because it runs in the authorizer function; caller.py: the caller of a request as
  the authorizer established it; usage_plans.py: per-tenant throttling, the API Gateway usage plan keys
  (the other AWS service the package speaks to).
"""
