"""Customers, subscriptions and the Stripe webhook effects."""
