"""How a refused DynamoDB write is judged, in one place: a lost race (another writer got there
first: re-read and decide again), a transient refusal (throttling, a conflicting transaction: send the
same request again later), or a real failure. Data-access code asks these functions; nothing else
inspects botocore error codes: a domain asks which items of a cancelled transaction failed their
condition (`cancellation`, `failed_items`), whether a single write lost its condition (`condition_failed`)
or collided with a transaction (`transaction_conflict`).

botocore's standard retry mode already re-sends a throttled single request; it does not re-send a
transaction that DynamoDB cancelled because one of its items was throttled or held by another
transaction, so `transact_write_items` does.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

CONDITION_FAILED = frozenset({"ConditionalCheckFailed"})
# Error codes of a request refused for capacity (after botocore's own retries).
THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "Throttling",
    }
)
# Cancellation reasons of a transaction item refused for capacity.
THROTTLING_REASONS = frozenset({"ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"})
CONFLICT_REASONS = frozenset({"TransactionConflict"})
# A write that lost either to another writer's condition or to another transaction on the same items.
CONDITION_OR_CONFLICT = CONDITION_FAILED | CONFLICT_REASONS
TRANSACT_ATTEMPTS = 4
TRANSACT_BACKOFF_SECONDS = 0.025


def error_code(exc: ClientError) -> str:
    """The AWS error code of a refused request ("" when there is none)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def condition_failed(exc: ClientError) -> bool:
    """A single write refused by its own condition (ConditionalCheckFailedException)."""
    return error_code(exc) == "ConditionalCheckFailedException"


def transaction_conflict(exc: ClientError) -> bool:
    """A single write that collided with a running transaction on the same item."""
    return error_code(exc) == "TransactionConflictException"


@dataclass(frozen=True)
class Cancellation:
    """A cancelled transaction, item by item, in the order the items were sent. `reasons` is how many
    reasons the service sent (some emulators send none: then every set is empty)."""

    reasons: int
    failed: frozenset[int]  # items whose condition failed
    conflicted: frozenset[int]  # items another transaction held
    throttled: frozenset[int]  # items refused for capacity
    fine: frozenset[int]  # items with nothing against them
    codes: tuple[str | None, ...]  # every reason's code, for an error message
    returned: Mapping[int, dict[str, Any]] = field(default_factory=dict)  # failed items as they were (ALL_OLD)

    def item(self, index: int) -> dict[str, Any] | None:
        """The item `index` as DynamoDB found it when its condition failed (the write asked for
        ReturnValuesOnConditionCheckFailure), else None."""
        return self.returned.get(index)

    @property
    def contended(self) -> bool:
        """Cancelled for a momentary reason (a conflicting transaction, throttling, or no reasons given):
        the same transaction may go through if sent again."""
        return bool(self.conflicted or self.throttled) or self.reasons == 0


def cancellation(exc: ClientError) -> Cancellation | None:
    """The cancelled transaction `exc` reports, item by item; None when `exc` is any other error."""
    reasons = cancel_reasons(exc)
    if reasons is None:
        return None
    codes = tuple(reason.get("Code") for reason in reasons)

    def where(wanted: frozenset[str | None]) -> frozenset[int]:
        return frozenset(i for i, code in enumerate(codes) if code in wanted)

    failed = where(frozenset(CONDITION_FAILED))
    return Cancellation(
        reasons=len(reasons),
        failed=failed,
        conflicted=where(frozenset(CONFLICT_REASONS)),
        throttled=where(frozenset(THROTTLING_REASONS)),
        fine=where(frozenset({None, "None"})),
        codes=codes,
        returned={i: dict(reasons[i]["Item"]) for i in failed if reasons[i].get("Item")},
    )


def failed_items(exc: ClientError) -> set[int]:
    """The items of a cancelled transaction whose condition failed (empty for any other error)."""
    refused = cancellation(exc)
    return set(refused.failed) if refused is not None else set()


def cancel_reasons(exc: ClientError) -> list[dict[str, Any]] | None:
    """The cancellation reasons of a cancelled transaction, in item order (empty when the service
    sent none); None for any other error."""
    if error_code(exc) != "TransactionCanceledException":
        return None
    reasons: Any = exc.response.get("CancellationReasons") or []
    return list(reasons)


def failed_conditions(exc: ClientError) -> dict[int, dict[str, Any] | None] | None:
    """Which items of a cancelled transaction failed their condition: item index -> the item as it was
    (when the item asked for it with `ReturnValuesOnConditionCheckFailure`, else None). Empty when the
    transaction was cancelled for other reasons only (a conflict, throttling); None for any other error."""
    refused = cancellation(exc)
    if refused is None:
        return None
    return {index: refused.item(index) for index in sorted(refused.failed)}


def _reason_codes(exc: ClientError) -> set[str | None] | None:
    reasons = cancel_reasons(exc)
    return None if reasons is None else {reason.get("Code") for reason in reasons}


def _message_names(exc: ClientError, codes: frozenset[str]) -> bool:
    # Without cancellation reasons (some emulators) the message lists them: "[ThrottlingError, None]".
    message = str(exc.response.get("Error", {}).get("Message", ""))
    return any(code in message for code in codes)


def lost_race(exc: ClientError, races: frozenset[str] = CONDITION_FAILED) -> bool:
    """True when DynamoDB refused a write only because another writer got there first: a single write's
    ConditionalCheckFailedException, or a cancelled transaction whose every cancellation reason is one of
    `races` (or `None`, an item that was fine) with at least one race among them. A transaction also
    cancelled for throttling or validation is not a lost race: retrying the same plan would not help."""
    if condition_failed(exc):
        return True
    codes = _reason_codes(exc)
    if codes is None:
        return False
    if codes:
        return bool(codes & races) and codes <= races | {"None", None}
    return _message_names(exc, races) and not _message_names(exc, THROTTLING_REASONS | CONFLICT_REASONS - races)


def applied(write: Callable[[], object], races: frozenset[str] = CONDITION_FAILED) -> bool:
    """Send a conditional write: True when DynamoDB applied it, False when it lost a race (`lost_race`).
    Anything else (throttling after every retry, a bad request) is raised to the caller."""
    try:
        write()
    except ClientError as exc:
        if lost_race(exc, races):
            return False
        raise
    return True


def transact_once(client: Any, items: list[dict[str, Any]]) -> Cancellation | None:
    """One TransactWriteItems, sent once: None when it applied, else what DynamoDB said of each item (the
    caller decides whether to plan again). Any failure other than a cancelled transaction is raised."""
    try:
        client.transact_write_items(TransactItems=items)
    except ClientError as exc:
        refused = cancellation(exc)
        if refused is None:
            raise
        return refused
    return None


def throttled(exc: ClientError) -> bool:
    """True when DynamoDB refused for capacity: a throttled request, or a transaction cancelled because
    any of its items was throttled (whatever the other items' reasons)."""
    if error_code(exc) in THROTTLING_CODES:
        return True
    codes = _reason_codes(exc)
    if codes is None:
        return False
    return bool(codes & THROTTLING_REASONS) if codes else _message_names(exc, THROTTLING_REASONS)


def transient(exc: ClientError) -> bool:
    """True when the same request may well succeed if sent again later: throttled, or a transaction
    cancelled only because another transaction held one of its items. Says nothing about the data."""
    if throttled(exc) or transaction_conflict(exc):
        return True
    codes = _reason_codes(exc)
    if not codes:
        return codes is not None and _message_names(exc, CONFLICT_REASONS)
    return bool(codes & CONFLICT_REASONS) and not codes & CONDITION_FAILED


def transact_write_items(client: Any, items: list[dict[str, Any]], *, attempts: int = TRANSACT_ATTEMPTS) -> None:
    """`TransactWriteItems`, sent again with jittered backoff while DynamoDB cancels it for transient
    reasons only. A cancelled transaction wrote nothing, so sending it again is safe. The last refusal
    is raised: the caller asks `lost_race` about it; a transient one propagates (the API answers 429
    with Retry-After, a queue or Stripe delivers again)."""
    for attempt in range(attempts):
        try:
            client.transact_write_items(TransactItems=items)
            return
        except ClientError as exc:
            if attempt == attempts - 1 or not transient(exc):
                raise
            time.sleep(random.uniform(0, TRANSACT_BACKOFF_SECONDS * 2**attempt))
