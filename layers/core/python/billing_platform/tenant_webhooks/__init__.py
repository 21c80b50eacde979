"""Tenants' webhook endpoints: registered by an operator, sent each billing event signed with the
endpoint's own secret (Stripe's scheme), retried with backoff.

- models.py: endpoints and deliveries (values); schemas.py: the HTTP bodies; signing.py: the signature scheme (pure);
  repository.py: endpoint and delivery items (the only module that reaches DynamoDB); queue.py: the
  webhook queue's one call outside Lambda's event source (postponing a failed message);
- service.py: operators register, list and delete endpoints; delivery.py: one event sent to each
  endpoint, its own module because it runs in the delivery function.
"""
