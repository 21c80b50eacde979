"""The levels of one atomic take: each level is one item of a single `TransactWriteItems` (the tenant's
quota counter, the limit item of each entity with a limit on the resource, and any other item kind that
must hold or count together with them: an idempotent consume's record, a reservation, a spend cap).

A `Level` carries its name (what a refusal names: `tenant`, `entity:<id>`), its transaction item, and
whether it is a counting level (its refusal means "this level has no room") or a companion (its refusal
means something else, decided by whoever added it). `commit` sends the transaction once and says which
level refused, with the item as it was; nothing is written unless every level's condition holds.

Short windows live on the counting item itself, as attributes beside the period counter:
`windows` (the marker: units and limits, `catalog.models.window_marker`), and per window
`w_<unit>_end` / `w_<unit>_rem` / `w_<unit>_used`. A take checks and counts them in the same update
(`with_windows`), and pins the marker, so a take built from outdated terms fails rather than skipping a
window; a take of a resource with no window requires the marker to be absent. The only extra request a
window costs is `align_windows`, when a window has rolled over (or the terms changed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from billing_platform.catalog.models import Window, parse_window_marker, window_marker
from billing_platform.conditions import applied, failed_conditions, transient
from billing_platform.dynamodb import decimal_of, number_attr, string_attr
from billing_platform.quantities import ZERO

Item = dict[str, Any]
WINDOWS_ATTRIBUTE = "windows"


def window_attributes(window: Window) -> tuple[str, str, str]:
    """(end, remaining, used) attribute names of `window` on a counting item."""
    return f"w_{window.value}_end", f"w_{window.value}_rem", f"w_{window.value}_used"


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def with_windows(expression: dict[str, Any], windows: dict[Window, Decimal], *, amount: str = ":q") -> dict[str, Any]:
    """`expression` (an update at `:now`) extended to check and count `windows` in the same write: every
    window live (`end > :now`) with `amount` (a value of the expression, the take's quantity) left. No
    windows: the item must carry none."""
    names = dict(expression["ExpressionAttributeNames"])
    values = dict(expression["ExpressionAttributeValues"])
    names["#win"] = WINDOWS_ATTRIBUTE
    condition = expression["ConditionExpression"]
    update = expression["UpdateExpression"]
    if not windows:
        return {
            **expression,
            "ConditionExpression": f"{condition} AND attribute_not_exists(#win)",
            "ExpressionAttributeNames": names,
        }
    values[":win"] = string_attr(window_marker(windows))
    condition += " AND #win = :win"
    for window in windows:
        end, rem, used = window_attributes(window)
        tag = window.value
        names.update({f"#{tag}_end": end, f"#{tag}_rem": rem, f"#{tag}_used": used})
        condition += f" AND #{tag}_end > :now AND #{tag}_rem >= {amount}"
        update += f", #{tag}_rem = #{tag}_rem - {amount}, #{tag}_used = #{tag}_used + {amount}"
    return {
        "UpdateExpression": update,
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


@dataclass(frozen=True)
class WindowState:
    """One window of a counting item as read: its end (epoch, 0 when never started) and what is left."""

    window: Window
    limit: Decimal
    end: int
    remaining: Decimal

    def live(self, now_epoch: int) -> bool:
        return self.end > now_epoch


def window_states(item: Item) -> list[WindowState]:
    """The windows an item carries, as read."""
    marker = item.get(WINDOWS_ATTRIBUTE, {}).get("S", "")
    states = []
    for window, limit in parse_window_marker(marker).items():
        end, rem, _used = window_attributes(window)
        states.append(
            WindowState(
                window,
                limit,
                int(item[end]["N"]) if end in item else 0,
                decimal_of(item[rem]) if rem in item else limit,
            )
        )
    return states


def needs_alignment(item: Item, windows: dict[Window, Decimal], now: datetime) -> bool:
    """Whether the item's windows differ from `windows` or one of them has ended (or never started)."""
    marker = item.get(WINDOWS_ATTRIBUTE, {}).get("S", "")
    if marker != window_marker(windows):
        return True
    now_epoch = epoch(now)
    return any(not state.live(now_epoch) for state in window_states(item))


def short_window(item: Item, quantity: Decimal, now: datetime) -> WindowState | None:
    """The live window of `item` that cannot cover `quantity` (the longest-lasting one if several), or None."""
    now_epoch = epoch(now)
    short = [s for s in window_states(item) if s.live(now_epoch) and s.remaining < quantity]
    return max(short, key=lambda s: s.end) if short else None


def align_windows(
    client: Any, table: str, key: Item, seen: Item, windows: dict[Window, Decimal], now: datetime
) -> bool:
    """Bring the item's windows to `windows` and start every window that has ended, in one conditional
    UpdateItem: conditioned on the marker and each rolled window's end as seen, so of racing callers exactly
    one starts a window (never twice). A live window whose limit changed keeps what it used. False when it
    lost a race (the caller re-reads)."""
    now_epoch = epoch(now)
    seen_marker = seen.get(WINDOWS_ATTRIBUTE, {}).get("S")
    names: dict[str, str] = {"#win": WINDOWS_ATTRIBUTE}
    values: dict[str, Any] = {}
    conditions = ["attribute_exists(pk)"]
    if seen_marker is None:
        conditions.append("attribute_not_exists(#win)")
    else:
        conditions.append("#win = :seen_win")
        values[":seen_win"] = string_attr(seen_marker)
    sets: list[str] = []
    removes: list[str] = []
    seen_windows = parse_window_marker(seen_marker or "")
    for window in Window:
        end, rem, used = window_attributes(window)
        tag = window.value
        if window not in windows:
            if window in seen_windows:
                removes += [f"#{tag}_end", f"#{tag}_rem", f"#{tag}_used"]
                names.update({f"#{tag}_end": end, f"#{tag}_rem": rem, f"#{tag}_used": used})
            continue
        names.update({f"#{tag}_end": end, f"#{tag}_rem": rem, f"#{tag}_used": used})
        values[f":{tag}_lim"] = number_attr(windows[window])
        seen_end = int(seen[end]["N"]) if end in seen else None
        if seen_end is not None and seen_end > now_epoch:
            # Live: keep what it used, against the (possibly new) limit.
            sets.append(f"#{tag}_rem = :{tag}_lim - #{tag}_used")
            conditions.append(f"#{tag}_end = :{tag}_seen")
            values[f":{tag}_seen"] = number_attr(seen_end)
            continue
        if seen_end is None:
            conditions.append(f"attribute_not_exists(#{tag}_end)")
        else:
            conditions.append(f"#{tag}_end = :{tag}_seen")
            values[f":{tag}_seen"] = number_attr(seen_end)
        values[f":{tag}_end"] = number_attr(window.end_after(now_epoch))
        values[":zero"] = number_attr(ZERO)
        sets += [f"#{tag}_end = :{tag}_end", f"#{tag}_rem = :{tag}_lim", f"#{tag}_used = :zero"]
    if windows:
        sets.append("#win = :win")
        values[":win"] = string_attr(window_marker(windows))
    else:
        removes.append("#win")
    update = ""
    if sets:
        update += "SET " + ", ".join(sets)
    if removes:
        update += " REMOVE " + ", ".join(removes)
    request: dict[str, Any] = {
        "TableName": table,
        "Key": key,
        "UpdateExpression": update.strip(),
        "ConditionExpression": " AND ".join(conditions),
        "ExpressionAttributeNames": names,
    }
    if values:
        request["ExpressionAttributeValues"] = values
    return applied(lambda: client.update_item(**request))


@dataclass(frozen=True)
class Level:
    """One item of a take. `counting`: a level with a limit (the tenant's quota, an entity's limit) whose
    refusal means it has no room; otherwise a companion (a record, a reservation, a spend cap) whose
    refusal its owner interprets."""

    name: str
    item: dict[str, Any]
    counting: bool = True
    entity_id: str | None = None


@dataclass(frozen=True)
class Committed:
    """The outcome of one transaction over levels: `applied`, or the levels that refused (name -> the item
    as it was, None when absent or not returned), or `conflict` (cancelled for another transaction or
    throttling only: nothing refused, send again)."""

    applied: bool
    refused: dict[int, Item | None] = field(default_factory=dict)
    conflict: bool = False


def commit(client: Any, levels: list[Level]) -> Committed:
    """Send every level's item in one `TransactWriteItems`: all apply or none does."""
    try:
        client.transact_write_items(TransactItems=[level.item for level in levels])
    except ClientError as err:
        failed = failed_conditions(err)
        if failed is None:
            raise
        if failed:
            return Committed(applied=False, refused=failed)
        if transient(err):
            return Committed(applied=False, conflict=True)
        raise
    return Committed(applied=True)
