"""Entitlements: per-tenant quotas and features from the plan catalog, consumed atomically.

`EntitlementService` (service.py) is the facade the API, the webhooks and the library's
`billing_platform.enforcer` call; each of its methods hands the shared `EntitlementContext` to one use case.
Departure from models / repository / service: the use cases fill more than ~400 lines, so each has its
own module, and the repository is split by kind of item (dal/).

- models.py: pure models and quota arithmetic, the request values; schemas.py: the HTTP bodies;
  context.py: what the use cases share (settings, repository, catalog, clock, caches); cache.py: the TTL
  cache; plans.py: the tenant's plan; answers.py: counter -> answer.
- consume.py: a consume without a key, the hot path (one UpdateItem); idempotency.py: a consume with a
  key, its states in order; records.py: the keyed take's record (made, answered, replayed); slow_path.py:
  why a condition failed (provision, roll the period, spread over shards); past_quota.py: a take the hard
  quota alone cannot cover (quota + grants, one transaction).
- capped.py: a take of a priced resource under a spend cap, the spend counted in the same transaction;
- take.py: a take committed with a companion write (reservations hold and settle through it);
  entity_take.py and entity_consume.py: a take that names an entity, counted at every limited level in one
  transaction built by `billing_platform.levels` (the tenant's counter, its entities' limits, companions).
- views.py: check, the quota read model, listing; release.py: giving quota back; reconcile.py: counters
  brought to a plan's terms (provisioning, layout switches); plan_changes.py: apply_plan, suspend, revoke.
- repository.py: `EntitlementRepository`, the only module of the package that reaches DynamoDB, composed
  of dal/ (items.py: keys and codecs; plans.py, counters.py, consume_records.py, layouts.py; table.py:
  shared plumbing).
"""
