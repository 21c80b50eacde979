"""The usage read model's storage layout: keys, attribute names and encodings (pure, no I/O).

Aggregates table, one **day item** per tenant x resource type x UTC day with usage:

    pk `U#<tenant>#<resource>`   sk `D#<yyyy-mm-dd>`
    t                       the day's total
    h<HH>                   the total of hour HH (00-23)
    :<code>                 (string) a dictionary entry, `<mark>|<value>`: the dimension value (or
                            entity) that `code` stands for in this item; <mark> is the dimension's name,
                            or @ for the entity
    :<code><HH>             the hour's total of the records carrying that value (or entity)
    <dimension>|<HH>|<v>    the same counter in plain form, for a value whose code another value of the
    @|<HH>|<entity>         same mark already holds in this item (and in items written before codes)
    w<stream tag>_<nn>      (binary) per usage partition key `USAGE#<nn>` the last stream sequence number
                            folded into this item: its exactly-once watermark (see aggregator)
    top_pk `TOP#<resource>#<yyyy-mm-dd>`, top_sk = tenant   index `top` (keys only, set once): the
                            tenants with usage of a resource on a day

Why one item per day holding its hours and groups: a stream batch writes each item it touches once,
and a write costs per KB of the item, so packing the hour, dimension and entity counters of a tenant's
day into one item costs one write per tenant x resource x day touched where separate hour / day / month
/ per-value rows cost five or more. Months are summed from their day items at read time (at most 31).
Top lists read the `top` index for the tenants of each day and the days' items.

Why codes: an update is billed per KB of the whole item, and a busy tenant's day holds a counter per
hour x value (24 x 50 entities x ...), each named after its value. A code is 4 characters of the hash
of the dimension and the value, so a counter's name costs 7 bytes whatever the names' lengths, and the
value itself is stored once per item (its dictionary entry). Exactness does not rest on the hash: a
write that introduces a code to an item does so on the condition that the entry is absent or names the
same value; a value whose code is taken by another one is written in plain form in that item from then
on.

Beside them, per tenant x resource x dimension x month, the **values registry** that enforces the
catalog's cardinality caps: pk `U#<tenant>#<resource>`, sk `V#<yyyy-mm>#<dimension>`, `v` (string set).
And one **progress** item per stream, pk `PROGRESS`, sk `<stream tag>`: `at`, the creation time of the
newest stream record folded in (what answers call `complete_until`).
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

TOTAL = "t"
ENTITY_MARK = "@"
SEP = "|"
CODE_SEP = ":"
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


def parse_group_cell(name: str) -> tuple[str, int, str] | None:
    """(mark, hour, value) of a counter named in plain form by `group_cell`, else None."""
    if name.count(SEP) < 2:
        return None
    mark, hour, value = name.split(SEP, 2)
    return mark, int(hour), value


def value_code(mark: str, value: str) -> str:
    """4 characters (24 bits) of the hash of (mark, value), in base64url (never ':' or '|')."""
    digest = hashlib.sha256(f"{mark}{SEP}{value}".encode()).digest()
    return base64.urlsafe_b64encode(digest[:3]).decode()


def entry_name(mark: str, value: str) -> str:
    """The dictionary entry that says which (mark, value) `value_code` stands for in an item."""
    return f"{CODE_SEP}{value_code(mark, value)}"


def entry_value(mark: str, value: str) -> str:
    return f"{mark}{SEP}{value}"


def coded_cell(mark: str, hour: int, value: str) -> str:
    return f"{entry_name(mark, value)}{hour:02d}"


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
    """A day item's counters, coded and plain forms summed (watermarks and keys ignored)."""
    cells = DayCells()
    entries = {name: value["S"] for name, value in item.items() if name.startswith(CODE_SEP) and "S" in value}
    for name, value in item.items():
        if "N" not in value:
            continue
        quantity = Decimal(value["N"])
        if name == TOTAL:
            cells.total = quantity
        elif match := _HOUR_RE.match(name):
            cells.hours[int(match.group(1))] = quantity
        elif plain := parse_group_cell(name):
            mark, hour, group_value = plain
            _add(cells, (mark, group_value), hour, quantity)
        elif name.startswith(CODE_SEP):
            entry, hour_text = name[:-2], name[-2:]
            if entry not in entries:
                raise ValueError(f"day item counter {name!r} has no dictionary entry")
            mark, group_value = entries[entry].split(SEP, 1)
            _add(cells, (mark, group_value), int(hour_text), quantity)
    return cells


def _add(cells: DayCells, group: tuple[str, str], hour: int, quantity: Decimal) -> None:
    per_hour = cells.groups.setdefault(group, {})
    per_hour[hour] = per_hour.get(hour, Decimal(0)) + quantity


def encode_counters(
    adds: dict[str, Decimal], plain: frozenset[tuple[str, str]] = frozenset()
) -> tuple[dict[str, Decimal], dict[str, str]]:
    """Counters named as `group_cell` / `hour_cell` / TOTAL name them -> (stored name -> quantity,
    dictionary entry -> value): each (mark, value) in coded form, except those in `plain` and a value
    whose code another value of the same mark already took here (sorted order decides)."""
    out: dict[str, Decimal] = {}
    entries: dict[str, str] = {}
    for name, quantity in sorted(adds.items()):
        group = parse_group_cell(name)
        if group is None:
            out[name] = out.get(name, Decimal(0)) + quantity
            continue
        mark, hour, value = group
        entry, label = entry_name(mark, value), entry_value(mark, value)
        if (mark, value) in plain or entries.get(entry, label) != label:
            out[name] = out.get(name, Decimal(0)) + quantity
            continue
        entries[entry] = label
        cell = coded_cell(mark, hour, value)
        out[cell] = out.get(cell, Decimal(0)) + quantity
    return out, entries


def day_of(at: datetime) -> str:
    return f"{at.year:04d}-{at.month:02d}-{at.day:02d}"
