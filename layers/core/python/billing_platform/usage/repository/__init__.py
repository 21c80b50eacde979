"""DynamoDB access for usage, the only usage code that speaks boto3: raw records in the usage table
(raw.py), the read model in the aggregates table (days.py: day items, the values registry, progress,
fence receipts; layout in `usage.layout`).

usage table (one item per record, written with BatchWriteItem, TTL `expires_at`)
    pk `USAGE#<nn>`  nn = (h(tenant, resource) + h(record id) mod RAW_SPREAD) mod RAW_PARTITIONS: the
                     records of one tenant x resource land on RAW_SPREAD neighbouring partition keys (so
                     a hot pair gets RAW_SPREAD x ~1,000 writes/s), and the aggregator, which groups a
                     batch by item, finds them together and coalesces them into few writes. A day item
                     therefore carries at most RAW_SPREAD watermarks.
    sk `<tenant>#<record id>`
    The key holds no timestamp or quantity, so a redelivered record lands on the same item even if its
    payload changed: the rewrite is a MODIFY, which the aggregator never counts. (A record id reused
    with another resource type is another record.)
"""

from billing_platform.usage.repository.days import AggregateRepository, DayDelta, WriteOutcome
from billing_platform.usage.repository.raw import (
    RAW_PARTITIONS,
    RAW_SPREAD,
    UsageRecordRepository,
    pair_partitions,
    raw_item,
    raw_key,
)

__all__ = [
    "RAW_PARTITIONS",
    "RAW_SPREAD",
    "AggregateRepository",
    "DayDelta",
    "UsageRecordRepository",
    "WriteOutcome",
    "pair_partitions",
    "raw_item",
    "raw_key",
]
