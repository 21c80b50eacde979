"""Tenants' webhook endpoints: registered by an operator, sent each billing event signed with the
endpoint's own secret (Stripe's scheme), retried with backoff."""
