"""The versioned plan catalog: which Stripe prices map to which plans, what each plan grants and what it
charges. `models` holds the catalog, its plans and quotas and the loader; `prices` the price models
(Stripe's per unit, package, graduated and volume tiers, in a currency) a plan's `pricing` is made of.
No repository or service: the catalog ships with the code (plans.json) and is read once, from no table."""

from billing_platform.catalog.models import Catalog, Plan, QuotaPolicy, ResourceQuota, load_catalog

__all__ = ["Catalog", "Plan", "QuotaPolicy", "ResourceQuota", "load_catalog"]
