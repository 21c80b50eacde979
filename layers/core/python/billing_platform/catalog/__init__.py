"""The versioned plan catalog: which Stripe prices map to which plans, and what each plan grants."""

from billing_platform.catalog.models import Catalog, Plan, QuotaPolicy, ResourceQuota, load_catalog

__all__ = ["Catalog", "Plan", "QuotaPolicy", "ResourceQuota", "load_catalog"]
