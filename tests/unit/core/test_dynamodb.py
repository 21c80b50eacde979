"""The DynamoDB toolkit (billing_platform.dynamodb): one rule each for numbers, strings, missing
numbers, the clock and the page cursor."""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal

import pytest

from billing_platform.dynamodb import decimal_of, decode_cursor, encode_cursor, number_attr, string_attr, utc_now
from billing_platform.errors import ValidationError


def test_numbers_are_exact_decimal_strings_and_never_nan_or_infinite() -> None:
    assert number_attr(Decimal("1E+3")) == {"N": "1000"}
    assert number_attr(Decimal("0.1")) == {"N": "0.1"}
    assert number_attr(7) == {"N": "7"}
    for bad in (Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")):
        with pytest.raises(ValueError, match="finite"):
            number_attr(bad)
    assert decimal_of(number_attr(Decimal("12.50"))) == Decimal("12.5")


def test_none_is_null_and_a_missing_number_reads_as_zero() -> None:
    assert string_attr("x") == {"S": "x"}
    assert string_attr(None) == {"NULL": True}
    assert decimal_of(None) == 0
    assert decimal_of({"NULL": True}) == 0


def test_the_clock_is_timezone_aware_utc() -> None:
    assert utc_now().tzinfo is UTC


def test_cursor_round_trips_and_rejects_tampering_and_other_tenants() -> None:
    last = {"pk": {"S": "AUDIT#t_a"}, "sk": {"S": "2026-11-25T12:00:00+00:00#aud_1"}}
    cursor = encode_cursor(last)
    assert cursor is not None
    assert decode_cursor(cursor, expected={"pk": "AUDIT#t_a"}, names={"pk", "sk"}) == last
    with pytest.raises(ValidationError):
        decode_cursor(cursor, expected={"pk": "AUDIT#t_b"}, names={"pk", "sk"})
    for garbage in ("%%%", "bm90IGpzb24", cursor[:-3], encode_cursor({"pk": {"S": "AUDIT#t_a"}})):
        with pytest.raises(ValidationError):
            decode_cursor(garbage, expected={"pk": "AUDIT#t_a"}, names={"pk", "sk"})
    assert decode_cursor(None, expected={}, names=set()) is None
    assert encode_cursor(None) is None
