"""`billing-admin`: the operator's command line (catalog, tenants, usage DLQ, Stripe replay, reconcile)."""
