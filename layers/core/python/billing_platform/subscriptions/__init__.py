"""Customers, subscriptions and the Stripe webhook effects.

- models.py: the stored subscription and the Stripe event; schemas.py: the operator API's requests and
  answers; repository.py: the
  billing table's Stripe-side items (the only module that reaches DynamoDB);
- service.py: customers and subscriptions through the billing provider; webhooks.py: Stripe events
  applied exactly once, its own use-case module since the two pass ~400 lines together.
"""
