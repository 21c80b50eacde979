"""The day item's coded counters: encoding then decoding gives back every counter, whatever the values,
including values whose codes collide (one of them stays in plain form) and items written in plain form."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_platform.usage.layout import (
    ENTITY_MARK,
    TOTAL,
    decode_day,
    encode_counters,
    entry_name,
    group_cell,
    hour_cell,
    value_code,
)

# Two entity ids whose 4-character codes are equal (found by search).
COLLIDING = ("user-2347", "user-2931")


def stored(counters: dict[str, Decimal], entries: dict[str, str]) -> dict[str, Any]:
    item: dict[str, Any] = {"pk": {"S": "U#t#tokens"}, "sk": {"S": "D#2026-12-07"}, "top_sk": {"S": "t"}}
    item.update({name: {"N": format(q, "f")} for name, q in counters.items()})
    item.update({name: {"S": value} for name, value in entries.items()})
    return item


def plain_item(adds: dict[str, Decimal]) -> dict[str, Any]:
    return stored(adds, {})


counters = st.dictionaries(
    st.tuples(
        st.sampled_from(["model", "region", ENTITY_MARK]),
        st.integers(0, 23),
        st.text(st.characters(codec="utf-8"), min_size=1, max_size=40) | st.sampled_from(COLLIDING),
    ),
    st.integers(1, 10**12).map(Decimal),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(counters, st.frozensets(st.tuples(st.sampled_from(["model", ENTITY_MARK]), st.sampled_from(COLLIDING))))
def test_decoding_the_encoded_counters_gives_every_counter_back(
    groups: dict[tuple[str, int, str], Decimal], plain: frozenset[tuple[str, str]]
) -> None:
    adds = {group_cell(mark, hour, value): q for (mark, hour, value), q in groups.items()}
    adds[TOTAL] = sum(groups.values(), Decimal(1))
    adds[hour_cell(5)] = Decimal(1)
    expected = decode_day(plain_item(adds))
    assert decode_day(stored(*encode_counters(adds, plain))) == expected
    assert sum((q for per_hour in expected.groups.values() for q in per_hour.values()), Decimal(0)) == sum(
        groups.values(), Decimal(0)
    )


def test_colliding_values_keep_one_code_and_the_other_is_written_plain() -> None:
    first, second = COLLIDING
    assert value_code(ENTITY_MARK, first) == value_code(ENTITY_MARK, second)
    adds = {group_cell(ENTITY_MARK, 3, first): Decimal(2), group_cell(ENTITY_MARK, 3, second): Decimal(5)}
    counters, entries = encode_counters(adds)
    assert entries == {entry_name(ENTITY_MARK, first): f"{ENTITY_MARK}|{first}"}
    assert group_cell(ENTITY_MARK, 3, second) in counters
    cells = decode_day(stored(counters, entries))
    assert cells.groups == {(ENTITY_MARK, first): {3: Decimal(2)}, (ENTITY_MARK, second): {3: Decimal(5)}}


def test_a_value_asked_plain_is_never_coded_and_both_forms_add_up() -> None:
    value = "gpt-4o"
    coded, entries = encode_counters({group_cell("model", 1, value): Decimal(4)})
    plain, no_entries = encode_counters({group_cell("model", 1, value): Decimal(6)}, frozenset({("model", value)}))
    assert no_entries == {}
    assert list(plain) == [group_cell("model", 1, value)]
    both = stored({**coded, **plain}, entries)
    assert decode_day(both).groups == {("model", value): {1: Decimal(10)}}


def test_a_coded_counter_is_shorter_than_its_plain_name_for_any_long_value() -> None:
    value = "tenant0123-user-with-a-long-id"
    (name,), _ = encode_counters({group_cell(ENTITY_MARK, 7, value): Decimal(1)})
    assert len(name) == len(":") + 4 + 2 < len(group_cell(ENTITY_MARK, 7, value))


def test_a_coded_counter_without_its_entry_is_an_error_not_a_silent_loss() -> None:
    counters, _ = encode_counters({group_cell("model", 1, "m"): Decimal(4)})
    with pytest.raises(ValueError, match="no dictionary entry"):
        decode_day(stored(counters, {}))
