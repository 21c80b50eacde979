"""DynamoDB access for entitlements: `EntitlementRepository`, the pieces of `entitlements/dal/` in one.

Every quota change is a conditional write. Methods return False / None when a condition fails; they
never retry on their own (boto3's standard retry mode handles throttling).
"""

from __future__ import annotations

from billing_platform.dynamodb import utc_now
from billing_platform.entitlements.dal.consume_records import ConsumeRecord, ConsumeRecordAccess, KeyedTake
from billing_platform.entitlements.dal.counters import CounterAccess
from billing_platform.entitlements.dal.items import (
    CONSUME_RECORD_DAYS,
    COUNTER_SK,
    Item,
    consume_record_key,
    counter_from_item,
    counter_key,
    counter_pk,
    counter_to_item,
    plan_from_item,
    plan_key,
    plan_to_item,
    profile_key,
)
from billing_platform.entitlements.dal.layouts import LayoutAccess
from billing_platform.entitlements.dal.plans import PlanAccess

__all__ = [
    "CONSUME_RECORD_DAYS",
    "COUNTER_SK",
    "ConsumeRecord",
    "EntitlementRepository",
    "Item",
    "KeyedTake",
    "consume_record_key",
    "counter_from_item",
    "counter_key",
    "counter_pk",
    "counter_to_item",
    "plan_from_item",
    "plan_key",
    "plan_to_item",
    "profile_key",
    "utc_now",
]


class EntitlementRepository(PlanAccess, CounterAccess, ConsumeRecordAccess, LayoutAccess):
    """The only entitlement code that speaks boto3: plans, counters, consume records, layouts.
    A new kind of item gets its own `dal/` module and joins this list."""
