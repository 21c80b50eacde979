"""`billing-admin catalog validate`: the plan catalog's schema and the rules the code relies on."""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pydantic import ValidationError as PydanticError

from billing_platform.catalog.models import DEFAULT_CATALOG, Catalog, QuotaPolicy, parse_catalog
from billing_platform.errors import CatalogError


@dataclass
class CatalogReport:
    path: str
    version: str | None = None
    plans: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "valid": self.ok} | asdict(self)


def validate_catalog(path: str | None = None) -> CatalogReport:
    """Parse the catalog file (schema + cross references) and apply the metering rules on top."""
    file = Path(path) if path else DEFAULT_CATALOG
    report = CatalogReport(path=str(file))
    try:
        catalog = parse_catalog(file.read_text(encoding="utf-8"))
    except OSError as exc:
        report.errors.append(f"cannot read {file}: {exc.strerror or exc}")
        return report
    except json.JSONDecodeError as exc:
        report.errors.append(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
        return report
    except PydanticError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ())) or "catalog"
            report.errors.append(f"{where}: {error.get('msg', 'invalid')}")
        return report
    except CatalogError as exc:
        report.errors.append(exc.message)
        return report
    report.version = catalog.version
    report.plans = len(catalog.plans)
    _check_rules(catalog, report)
    return report


def _check_rules(catalog: Catalog, report: CatalogReport) -> None:
    meters: dict[str, str] = {}
    for name, resource_type in sorted(catalog.resource_types.items()):
        if not resource_type.meter_event_name.strip():
            report.errors.append(f"resource type {name!r} has an empty meter_event_name")
        other = meters.setdefault(resource_type.meter_event_name, name)
        if other != name:
            # The meter reporter would mix two resources' usage into one Stripe meter.
            report.errors.append(
                f"resource types {other!r} and {name!r} share meter_event_name {resource_type.meter_event_name!r}"
            )
    granted = {r for plan in catalog.plans.values() for r in plan.quotas}
    for name in sorted(set(catalog.resource_types) - granted):
        report.warnings.append(f"resource type {name!r} is granted by no plan (every use is denied)")
    for plan in sorted(catalog.plans.values(), key=lambda p: p.id):
        if not plan.prices and plan.id != catalog.default_plan:
            report.warnings.append(f"plan {plan.id!r} has no Stripe price: no subscription can reach it")
        for resource, quota in sorted(plan.quotas.items()):
            if quota.metered and quota.policy is QuotaPolicy.HARD:
                report.warnings.append(
                    f"plan {plan.id!r} meters {resource!r} under a hard limit: usage past the limit is denied, "
                    "so the meter only ever bills up to it"
                )
    _check_thresholds(catalog, report)
    _check_topups(catalog, report)
    _check_pricing(catalog, report)
    ranks = sorted((p.rank, p.id) for p in catalog.plans.values())
    for (rank_a, a), (rank_b, b) in itertools.pairwise(ranks):
        if rank_a == rank_b:
            report.warnings.append(f"plans {a!r} and {b!r} share rank {rank_a}: upgrade/downgrade is ambiguous")


def _check_thresholds(catalog: Catalog, report: CatalogReport) -> None:
    """Threshold lists parse only when valid (0 < t <= 1000, increasing); what is left are plans whose
    alerts can never fire."""
    for plan in sorted(catalog.plans.values(), key=lambda p: p.id):
        limited = [q for q in plan.quotas.values() if q.policy is not QuotaPolicy.UNLIMITED and q.limit]
        if not plan.thresholds:
            if limited:
                report.warnings.append(f"plan {plan.id!r} has no thresholds: its tenants get no usage alerts")
            continue
        soft = any(q.policy is QuotaPolicy.SOFT for q in limited)
        beyond = [t for t in plan.thresholds if t > 100]
        if beyond and not soft:
            report.warnings.append(
                f"plan {plan.id!r} thresholds {', '.join(f'{t}%' for t in beyond)} exceed 100% but it has no soft "
                "quota: a hard quota never passes its limit, so they never fire"
            )


def _check_topups(catalog: Catalog, report: CatalogReport) -> None:
    """Top-up prices: the schema already refused unknown resources, non-positive or over-precise amounts,
    priorities outside 0..100 and prices shared with a plan. What remains are purchases that would
    never (or not always) be drawn."""
    for price, topup in sorted(catalog.topups.items()):
        if not price.startswith("price_"):
            report.errors.append(f"top-up {price!r} is not a Stripe price id (price_...)")
        policies = {
            plan.id: quota.policy
            for plan in catalog.plans.values()
            if (quota := plan.quota(topup.resource_type)) is not None
        }
        hard = sorted(pid for pid, policy in policies.items() if policy is QuotaPolicy.HARD)
        if not hard:
            report.errors.append(
                f"top-up {price!r} grants {topup.resource_type!r}, which no plan limits hard: "
                "grants are drawn only once a hard quota is used up, so the purchase would never be drawn"
            )
        elif len(hard) < len(catalog.plans):
            others = sorted(set(catalog.plans) - set(hard))
            report.warnings.append(
                f"top-up {price!r} ({topup.resource_type!r}) is drawn only on plans with a hard quota "
                f"({', '.join(hard)}); on {', '.join(others)} it stays unused"
            )
        if topup.expires_after_days is None:
            report.warnings.append(f"top-up {price!r} never expires: its grants stay on the books forever")


def _check_pricing(catalog: Catalog, report: CatalogReport) -> None:
    """Prices: the schema already refused negative amounts, unknown currencies, a price without a currency,
    tiers with a gap or out of order, a metered price without a meter and a plan priced in two currencies.
    What remains are prices that Stripe would bill differently from the platform's own rating."""
    owners: dict[str, str] = {price: f"plan {plan.id!r}" for plan in catalog.plans.values() for price in plan.prices}
    owners |= {price: "a top-up" for price in catalog.topups}
    for plan in sorted(catalog.plans.values(), key=lambda p: p.id):
        pricing = plan.pricing
        if pricing is None:
            continue
        fee = pricing.fee
        if fee is not None and fee.stripe_price_id is not None and fee.stripe_price_id not in plan.prices:
            report.errors.append(
                f"plan {plan.id!r} fee price {fee.stripe_price_id!r} is not one of its prices {list(plan.prices)}"
            )
        for resource, priced in sorted(pricing.resources.items()):
            meter = catalog.resource_types[resource].meter_event_name
            quota = plan.quota(resource)
            for price in priced.all_prices():
                where = f"plan {plan.id!r} {resource!r} price {price.stripe_price_id or '(no Stripe price)'}"
                if price.meter is not None and price.meter != meter:
                    report.errors.append(
                        f"{where} is billed from meter {price.meter!r} but {resource!r} usage is reported to {meter!r}"
                    )
                if price.stripe_price_id is not None:
                    owner = owners.setdefault(price.stripe_price_id, where)
                    if owner != where:
                        report.errors.append(f"{where}: the Stripe price is also {owner}")
                if quota is not None and quota.metered and price.usage_type.value != "metered":
                    report.warnings.append(f"{where} is licensed but the quota is metered: Stripe bills no usage")
            included = priced.price.included
            if (
                quota is not None
                and quota.policy is QuotaPolicy.SOFT
                and quota.limit is not None
                and included != quota.limit
            ):
                report.warnings.append(
                    f"plan {plan.id!r} {resource!r} includes {included} units but its soft quota is {quota.limit}: "
                    "the overage billed starts elsewhere than the quota's alerts"
                )
