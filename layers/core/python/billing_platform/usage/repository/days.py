"""The read model in the aggregates table (layout: `usage.layout`): day items with their watermarks,
the values registry, progress, fence receipts; and the reads behind every usage answer."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from billing_platform.conditions import cancellation, condition_failed
from billing_platform.dynamodb import BillingTable, query_items, query_sort_key_range
from billing_platform.settings import Settings
from billing_platform.usage.layout import (
    PROGRESS_PK,
    DayCells,
    DayKey,
    day_pk,
    day_sk,
    decode_day,
    encode_counters,
    encode_seq,
    registry_sk,
    top_pk,
)
from billing_platform.usage.models import Granularity
from billing_platform.usage.repository.raw import BATCH_GET_MAX, TRANSACT_MAX, WRITE_WORKERS

_In = TypeVar("_In")
_Out = TypeVar("_Out")


@dataclass
class DayDelta:
    """What one write adds to one day item (attribute -> quantity), and for each usage partition key
    (watermark attribute) the first and last sequence numbers it covers: the write succeeds only if every
    such watermark is still below its first, and moves it to its last."""

    day: DayKey
    adds: dict[str, Decimal]  # counters named in plain form (`layout.group_cell`); coded when written
    watermarks: dict[str, tuple[str, str]] = field(default_factory=dict)
    plain: frozenset[tuple[str, str]] = frozenset()  # (mark, value)s written in plain form in this item


@dataclass
class WriteOutcome:
    """Indexes into the deltas given to `write_days`: refused by a watermark (some of it was applied
    before), to be sent again as they are (a transaction cancelled by a neighbour), or failed."""

    stale: list[int] = field(default_factory=list)
    again: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    requests: int = 0


def _placeholder(i: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        i, rest = divmod(i, 36)
        out = digits[rest] + out
        if not i:
            return out


class AggregateRepository(BillingTable):
    """The read model in the aggregates table: day items with their watermarks, the values registry and
    the progress item; and the reads behind every usage answer."""

    def __init__(self, settings: Settings | None = None, client: Any = None) -> None:
        super().__init__(settings, client)
        self._pool: ThreadPoolExecutor | None = None

    @property
    def table(self) -> str:
        return self._settings.aggregates_table_name

    # ------------------------------------------------------------------------------------ writes

    def day_update(self, delta: DayDelta) -> dict[str, Any]:
        """One write (a transaction item; its "Update" is also an UpdateItem request): add each quantity
        to its counter (coded, `layout.encode_counters`), set the index keys and the dictionary entries of
        the codes it uses, and advance the given watermarks, only if each is still below the first
        sequence number this write covers for that usage partition key and each entry is absent or
        names the same value."""
        names: dict[str, str] = {"#tp": "top_pk", "#ts": "top_sk"}
        values: dict[str, Any] = {
            ":tp": {"S": top_pk(delta.day.resource_type, delta.day.day)},
            ":ts": {"S": delta.day.tenant_id},
        }
        counters, entries = encode_counters(delta.adds, delta.plain)
        adds = []
        for i, (attribute, quantity) in enumerate(sorted(counters.items())):
            tag = _placeholder(i)
            names[f"#{tag}"] = attribute
            values[f":{tag}"] = {"N": format(quantity, "f")}
            adds.append(f"#{tag} :{tag}")
        sets = ["#tp = :tp", "#ts = :ts"]
        conditions = []
        for i, (entry, value) in enumerate(sorted(entries.items())):
            tag = f"E{_placeholder(i)}"  # upper case: never one of the counters' tags
            names[f"#{tag}"] = entry
            values[f":{tag}"] = {"S": value}
            sets.append(f"#{tag} = :{tag}")
            conditions.append(f"(attribute_not_exists(#{tag}) OR #{tag} = :{tag})")
        for i, (attribute, (first, last)) in enumerate(sorted(delta.watermarks.items())):
            names[f"#w{i}"] = attribute
            values[f":f{i}"] = {"B": encode_seq(first)}
            values[f":l{i}"] = {"B": encode_seq(last)}
            sets.append(f"#w{i} = :l{i}")
            conditions.append(f"(attribute_not_exists(#w{i}) OR #w{i} < :f{i})")
        update: dict[str, Any] = {
            "TableName": self.table,
            "Key": delta.day.key(),
            "UpdateExpression": "ADD " + ", ".join(adds) + " SET " + ", ".join(sets),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if conditions:
            update["ConditionExpression"] = " AND ".join(conditions)
        return {"Update": update}

    def transact(self, items: list[dict[str, Any]]) -> None:
        self.client.transact_write_items(TransactItems=items)

    def write_days(self, deltas: Sequence[DayDelta]) -> WriteOutcome:
        """Send the deltas (one per item), in parallel, the way settings say (`usage_aggregate_writes`).
        Each delta stands alone: a refused one never undoes another. Errors other than DynamoDB refusals
        propagate."""
        outcome = WriteOutcome()
        if not deltas:
            return outcome
        if self._settings.usage_aggregate_writes == "single":
            units = [[i] for i in range(len(deltas))]
            send = self._send_single
        else:
            units = [list(range(s, min(s + TRANSACT_MAX, len(deltas)))) for s in range(0, len(deltas), TRANSACT_MAX)]
            send = self._send_transaction
        for part in self.parallel(lambda unit: send(unit, deltas), units):
            outcome.stale += part.stale
            outcome.again += part.again
            outcome.failed += part.failed
            outcome.requests += part.requests
        return outcome

    def parallel(self, fn: Callable[[_In], _Out], items: list[_In]) -> list[_Out]:
        """fn over items on the container's worker threads. Every call finishes before the first error
        (if any) is raised, so nothing is still writing when the caller reports or retries."""
        if len(items) <= 1:
            return [fn(item) for item in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=WRITE_WORKERS, thread_name_prefix="aggregates")
        futures = [self._pool.submit(fn, item) for item in items]
        errors = [f.exception() for f in futures]
        for error in errors:
            if error is not None:
                raise error
        return [f.result() for f in futures]

    def _send_single(self, unit: list[int], deltas: Sequence[DayDelta]) -> WriteOutcome:
        (index,) = unit
        try:
            self.client.update_item(**self.day_update(deltas[index])["Update"])
        except ClientError as exc:
            if condition_failed(exc):
                return WriteOutcome(stale=[index], requests=1)
            return WriteOutcome(failed=[index], requests=1)
        return WriteOutcome(requests=1)

    def _send_transaction(self, unit: list[int], deltas: Sequence[DayDelta]) -> WriteOutcome:
        try:
            self.transact([self.day_update(deltas[i]) for i in unit])
        except ClientError as exc:
            refused = cancellation(exc)
            if refused is None or refused.reasons != len(unit):
                return WriteOutcome(failed=list(unit), requests=1)
            out = WriteOutcome(requests=1)
            for position, index in enumerate(unit):
                if position in refused.failed:
                    out.stale.append(index)
                elif position in refused.fine | refused.conflicted:
                    out.again.append(index)  # fine itself, or raced a concurrent writer: send again
                else:
                    out.failed.append(index)
            return out
        return WriteOutcome(requests=1)

    def get_watermarks(
        self, days: Iterable[DayKey], attributes: Iterable[str], entries: Iterable[str] = ()
    ) -> dict[DayKey, dict[str, bytes]]:
        """For each day item, its watermark attributes among `attributes` and its dictionary entries among
        `entries` (a value's UTF-8 bytes), strongly consistent reads. With entries the whole items are
        read (their names could outgrow a projection expression); this runs only after a refused write."""
        wanted = list(dict.fromkeys(days))
        attribute_names = set(attributes) | set(entries)
        names = {f"#w{i}": a for i, a in enumerate(sorted(set(attributes)))}
        projection: dict[str, Any] = {}
        if not set(entries):
            projection = {"ProjectionExpression": ", ".join(["pk", "sk", *names]), "ExpressionAttributeNames": names}
        by_key = {(d.key()["pk"]["S"], d.key()["sk"]["S"]): d for d in wanted}
        found: dict[DayKey, dict[str, bytes]] = {}
        for start in range(0, len(wanted), BATCH_GET_MAX):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [d.key() for d in wanted[start : start + BATCH_GET_MAX]],
                    "ConsistentRead": True,
                    **projection,
                }
            }
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table, []):
                    day = by_key[(item["pk"]["S"], item["sk"]["S"])]
                    found[day] = {
                        a: bytes(value["B"]) if "B" in value else value["S"].encode()
                        for a, value in item.items()
                        if a in attribute_names and ("B" in value or "S" in value)
                    }
                request = response.get("UnprocessedKeys") or {}
        return found

    def advance_progress(self, stream: str, at: datetime) -> None:
        """Move the stream's `complete_until` forward to `at` (never back)."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"pk": {"S": PROGRESS_PK}, "sk": {"S": stream}},
                UpdateExpression="SET #at = :at",
                ConditionExpression="attribute_not_exists(#at) OR #at < :at",
                ExpressionAttributeNames={"#at": "at"},
                ExpressionAttributeValues={":at": {"S": at.isoformat()}},
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise

    # ------------------------------------------------------------------------------------ values registry

    def registered_values(self, tenant_id: str, resource_type: str, month: str, dimension: str) -> set[str]:
        response = self.client.get_item(
            TableName=self.table,
            Key={"pk": {"S": day_pk(tenant_id, resource_type)}, "sk": {"S": registry_sk(month, dimension)}},
            ConsistentRead=True,
        )
        return set(response.get("Item", {}).get("v", {}).get("SS", []))

    def register_value(
        self, tenant_id: str, resource_type: str, month: str, dimension: str, *, value: str, cap: int
    ) -> bool:
        """Add `value` to the month's registry unless it already holds `cap` other values; False if full."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"pk": {"S": day_pk(tenant_id, resource_type)}, "sk": {"S": registry_sk(month, dimension)}},
                UpdateExpression="ADD v :v",
                ConditionExpression="attribute_not_exists(v) OR contains(v, :s) OR size(v) < :cap",
                ExpressionAttributeValues={":v": {"SS": [value]}, ":s": {"S": value}, ":cap": {"N": str(cap)}},
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    # ------------------------------------------------------------------------------------ reads

    def complete_until(self) -> datetime | None:
        """The oldest `at` of the streams' progress items (None before anything was aggregated)."""
        items = list(
            query_items(
                self.client,
                TableName=self.table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": PROGRESS_PK}},
            )
        )
        marks = [datetime.fromisoformat(i["at"]["S"]) for i in items if "at" in i]
        return min(marks) if marks else None

    def days_of(self, tenant_id: str, resource_type: str, first: str, last: str) -> dict[str, DayCells]:
        """day -> counters of a tenant's day items with first <= day <= last (one Query)."""
        out: dict[str, DayCells] = {}
        for item in query_sort_key_range(
            self.client, self.table, day_pk(tenant_id, resource_type), day_sk(first), day_sk(last)
        ):
            out[item["sk"]["S"][2:]] = decode_day(item)
        return out

    def tenants_of_day(self, resource_type: str, day: str) -> list[str]:
        """The tenants with usage of `resource_type` on `day` (the `top` index, keys only)."""
        return [
            item["top_sk"]["S"]
            for item in query_items(
                self.client,
                TableName=self.table,
                IndexName="top",
                KeyConditionExpression="top_pk = :g",
                ExpressionAttributeValues={":g": {"S": top_pk(resource_type, day)}},
            )
        ]

    def day_items(self, resource_type: str, day: str, tenants: Sequence[str]) -> dict[str, DayCells]:
        """tenant -> counters of one day's items of the given tenants (batch reads, in parallel)."""
        keys = [DayKey(t, resource_type, day).key() for t in dict.fromkeys(tenants)]
        out: dict[str, DayCells] = {}
        for part in self.parallel(
            self._read_days, [keys[s : s + BATCH_GET_MAX] for s in range(0, len(keys), BATCH_GET_MAX)]
        ):
            out.update(part)
        return out

    def tenants_days(
        self, tenants: Sequence[str], resource_type: str, first: str, last: str
    ) -> list[dict[str, DayCells]]:
        """For each tenant (in order), `days_of` its range: one Query each, in parallel."""
        return self.parallel(lambda tenant: self.days_of(tenant, resource_type, first, last), list(tenants))

    def _read_days(self, keys: list[dict[str, Any]]) -> dict[str, DayCells]:
        out: dict[str, DayCells] = {}
        request: dict[str, Any] = {self.table: {"Keys": keys}}
        while request:
            response = self.client.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(self.table, []):
                out[item["top_sk"]["S"]] = decode_day(item)
            request = response.get("UnprocessedKeys") or {}
        return out

    def bucket_rows(
        self, tenant_id: str, resource_type: str, granularity: Granularity, first: str, last: str
    ) -> dict[str, Decimal]:
        """label -> total for a tenant's hour or day buckets with first <= label <= last (labels as
        `models.bucket_label` writes them); buckets without usage are left out."""
        days = self.days_of(tenant_id, resource_type, first[:10], last[:10])
        out: dict[str, Decimal] = {}
        for day, cells in days.items():
            if granularity is Granularity.DAY:
                if first <= day <= last:
                    out[day] = cells.total
                continue
            for hour, total in cells.hours.items():
                label = f"{day}T{hour:02d}"
                if first <= label <= last:
                    out[label] = total
        return out

    def bucket_totals(self, resource_type: str, granularity: Granularity, label: str) -> dict[str, Decimal]:
        """tenant -> total of one day (`granularity` DAY, label yyyy-mm-dd) for every tenant with usage."""
        if granularity is not Granularity.DAY:
            raise ValueError("bucket_totals reads whole days")
        cells = self.day_items(resource_type, label, self.tenants_of_day(resource_type, label))
        return {tenant: c.total for tenant, c in cells.items()}

    # ------------------------------------------------------------------------------------ rebuild

    def fence_receipts(self, round_id: str) -> set[str]:
        """The usage partition keys whose fence of `round_id` the aggregator has passed."""
        items = query_items(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"FENCE#{round_id}"}},
            ConsistentRead=True,
        )
        return {item["sk"]["S"] for item in items}

    def put_fence_receipts(self, receipts: Iterable[tuple[str, str]]) -> None:
        """(round id, usage pk) the aggregator has passed: every record stored on that pk before the fence
        is in the read model. Kept a day (TTL)."""
        expires = str(int(time.time()) + 86_400)
        for round_id, usage_pk in receipts:
            self.client.put_item(
                TableName=self.table,
                Item={"pk": {"S": f"FENCE#{round_id}"}, "sk": {"S": usage_pk}, "expires_at": {"N": expires}},
            )

    def stream_tags(self) -> set[str]:
        """The tags of the streams that have folded records into the read model (their progress items)."""
        items = query_items(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": PROGRESS_PK}},
        )
        return {item["sk"]["S"] for item in items}

    def day_items_of(self, tenant_id: str, resource_type: str, first: str, last: str) -> dict[str, dict[str, Any]]:
        """day -> the whole stored day item (strongly consistent)."""
        return {
            item["sk"]["S"][2:]: item
            for item in query_sort_key_range(
                self.client,
                self.table,
                day_pk(tenant_id, resource_type),
                day_sk(first),
                day_sk(last),
                ConsistentRead=True,
            )
        }

    def replace_day(self, day: DayKey, adds: dict[str, Decimal], seen: dict[str, Any] | None, marks: set[str]) -> bool:
        """Replace a day item's counters with `adds` (named in plain form; stored coded, with their
        dictionary entries; delete the item when empty), keeping the watermarks it had
        when read (`seen`, None: it did not exist), only if none of its watermarks among `marks` moved since
        then; False if one did (a record was folded in meanwhile)."""
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        conditions = []
        for i, mark in enumerate(sorted(marks)):
            names[f"#w{i}"] = mark
            if seen is not None and mark in seen:
                values[f":w{i}"] = seen[mark]
                conditions.append(f"#w{i} = :w{i}")
            else:
                conditions.append(f"attribute_not_exists(#w{i})")
        if seen is None:
            conditions.append("attribute_not_exists(pk)")
        condition: dict[str, Any] = {"ConditionExpression": " AND ".join(conditions)}
        if names:
            condition["ExpressionAttributeNames"] = names
        if values:
            condition["ExpressionAttributeValues"] = values
        try:
            if not adds:
                if seen is not None:
                    self.client.delete_item(TableName=self.table, Key=day.key(), **condition)
                return True
            counters, entries = encode_counters(adds)
            item: dict[str, Any] = {
                **day.key(),
                "top_pk": {"S": top_pk(day.resource_type, day.day)},
                "top_sk": {"S": day.tenant_id},
                **{name: {"N": format(q, "f")} for name, q in counters.items()},
                **{name: {"S": value} for name, value in entries.items()},
                **{m: seen[m] for m in marks if seen is not None and m in seen},
            }
            self.client.put_item(TableName=self.table, Item=item, **condition)
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise
        return True
