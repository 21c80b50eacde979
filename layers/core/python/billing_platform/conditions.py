"""Telling a lost race from a real failure when DynamoDB refuses a conditional write."""

from __future__ import annotations

from botocore.exceptions import ClientError

CONDITION_FAILED = frozenset({"ConditionalCheckFailed"})


def lost_race(exc: ClientError, races: frozenset[str] = CONDITION_FAILED) -> bool:
    """True when DynamoDB refused a write only because another writer got there first: a single write's
    ConditionalCheckFailedException, or a cancelled transaction whose every cancellation reason is one of
    `races` (or `None`, an item that was fine) with at least one race among them. A transaction also
    cancelled for throttling or validation is not a lost race: retrying the same plan would not help.
    Without cancellation reasons (some emulators) the error message is searched for a race code."""
    error = exc.response.get("Error", {})
    code = error.get("Code")
    if code == "ConditionalCheckFailedException":
        return True
    if code != "TransactionCanceledException":
        return False
    reasons = exc.response.get("CancellationReasons") or []
    codes = {reason.get("Code") for reason in reasons}
    if reasons:
        return bool(codes & races) and codes <= races | {"None", None}
    message = str(error.get("Message", ""))
    return any(race in message for race in races)
