"""Billing events tenants subscribe to: quota threshold crossings, grants used up or expired with a balance.
Detected off the hot path (the billing table's stream, a schedule), published once each to the event bus.

- models.py: the events, their detail schema and stable ids; detection.py: what a stream record means
  (pure functions over its images);
- repository.py: the event ledger, one marker item per event (the only module that reaches DynamoDB);
  publisher.py: the EventBridge bus, the other AWS service the package speaks to;
- stream.py and sweeper.py: the two publishing use cases, one module each because each runs in its own
  function (quota_events, event_sweeper) and imports only what it runs; service.py: a tenant's recent events
  read for the tenant route, answered in schemas.py.
"""
