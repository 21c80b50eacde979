"""Append-only audit log of every mutation, queryable per tenant.

log.py holds the entry (a value) and the table access together: one model and one writer, small enough
that models / repository / service modules would only split it.
"""
