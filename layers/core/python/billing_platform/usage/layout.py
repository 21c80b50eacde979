"""The usage read model's storage layout: keys, attribute names and encodings (pure, no I/O).

Aggregates table, one **day item** per tenant x resource type x UTC day with usage:

    pk `U#<tenant>#<resource>`   sk `D#<yyyy-mm-dd>`
    t                       the day's total
    h<HH>                   the total of hour HH (00-23)
    <dimension>|<HH>|<v>    the hour's total of the records carrying dimension value v
    @|<HH>|<entity>         the hour's total of one entity's records
    w<stream tag>_<nn>      (binary) per usage partition key `USAGE#<nn>` the last stream sequence number
                            folded into this item: its exactly-once watermark (see aggregator)
    top_pk `TOP#<resource>#<yyyy-mm-dd>`, top_sk = tenant   index `top` (keys only, set once): the
                            tenants with usage of a resource on a day

Why one item per day holding its hours and groups: a stream batch writes each item it touches once,
and a write costs per KB of the item, so packing the hour, dimension and entity counters of a tenant's
day into one item costs one write per tenant x resource x day touched where separate hour / day / month
/ per-value rows cost five or more. Months are summed from their day items at read time (at most 31).
Top lists read the `top` index for the tenants of each day and the days' items.

Beside them, per tenant x resource x dimension x month, the **values registry** that enforces the
catalog's cardinality caps: pk `U#<tenant>#<resource>`, sk `V#<yyyy-mm>#<dimension>`, `v` (string set).
And one **progress** item per stream, pk `PROGRESS`, sk `<stream tag>`: `at`, the creation time of the
newest stream record folded in (what answers call `complete_until`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

TOTAL = "t"
ENTITY_MARK = "@"
SEP = "|"
PROGRESS_PK = "PROGRESS"
# DynamoDB stream sequence numbers have at most 40 decimal digits: 17 bytes, big-endian, compare as the
# numbers do (DynamoDB compares binary values byte by byte, unsigned).
SEQ_BYTES = 17
_HOUR_RE = re.compile(r"^h(\d\d)$")


def day_pk(tenant_id: str, resource_type: str) -> str:
    return f"U#{tenant_id}#{resource_type}"


def day_sk(day: str) -> str:
    return f"D#{day}"


def registry_sk(month: str, dimension: str) -> str:
    return f"V#{month}#{dimension}"


def top_pk(resource_type: str, day: str) -> str:
    return f"TOP#{resource_type}#{day}"


def hour_cell(hour: int) -> str:
    return f"h{hour:02d}"


def group_cell(dimension: str, hour: int, value: str) -> str:
    """`dimension` is a declared dimension's name, or `ENTITY_MARK` for the entity."""
    return f"{dimension}{SEP}{hour:02d}{SEP}{value}"


def encode_seq(sequence_number: str) -> bytes:
    return int(sequence_number).to_bytes(SEQ_BYTES, "big")


def stream_tag(stream_label: str) -> str:
    return hashlib.sha256(stream_label.encode()).hexdigest()[:6]


def watermark_attribute(stream_label: str, usage_pk: str) -> str:
    """`w<6 hex of the stream label>_<nn>`: a new stream (table re-created) starts new watermarks."""
    return f"w{stream_tag(stream_label)}_{usage_pk.rsplit('#', 1)[-1]}"


@dataclass(frozen=True)
class DayKey:
    tenant_id: str
    resource_type: str
    day: str  # yyyy-mm-dd

    def key(self) -> dict[str, dict[str, str]]:
        return {"pk": {"S": day_pk(self.tenant_id, self.resource_type)}, "sk": {"S": day_sk(self.day)}}


@dataclass
class DayCells:
    """The counters of one day item, decoded: hour -> total, and (dimension, value) -> hour -> total."""

    total: Decimal = Decimal(0)
    hours: dict[int, Decimal] = field(default_factory=dict)
    groups: dict[tuple[str, str], dict[int, Decimal]] = field(default_factory=dict)

    def hour_total(self, hours: range) -> Decimal:
        return sum((q for h, q in self.hours.items() if h in hours), Decimal(0))


def decode_day(item: dict[str, dict[str, str]]) -> DayCells:
    """A day item's counters (watermarks and keys ignored)."""
    cells = DayCells()
    for name, value in item.items():
        if "N" not in value:
            continue
        quantity = Decimal(value["N"])
        if name == TOTAL:
            cells.total = quantity
        elif match := _HOUR_RE.match(name):
            cells.hours[int(match.group(1))] = quantity
        elif name.count(SEP) >= 2:
            dimension, hour, group_value = name.split(SEP, 2)
            cells.groups.setdefault((dimension, group_value), {})[int(hour)] = quantity
    return cells


def day_of(at: datetime) -> str:
    return f"{at.year:04d}-{at.month:02d}-{at.day:02d}"
