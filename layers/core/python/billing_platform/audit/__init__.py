"""Append-only audit log of every mutation, queryable per tenant."""
