"""Properties of the pure counter arithmetic (hypothesis) and the TTL cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_platform.catalog.models import QuotaPolicy
from billing_platform.entitlements.cache import TTLCache
from billing_platform.entitlements.models import (
    DenyReason,
    EntitlementCheck,
    QuotaCounter,
    add_months,
    advance_period,
    check_from_counter,
    combine_shards,
    split_limit,
    spread_used,
    validate_quantity,
)
from billing_platform.quantities import MAX_QUANTITY, decimal_str

quantities = st.decimals(
    min_value=Decimal("0.000001"), max_value=Decimal(10**6), places=6, allow_nan=False, allow_infinity=False
)
limits = st.decimals(min_value=Decimal(0), max_value=Decimal(10**9), places=6, allow_nan=False, allow_infinity=False)
moments = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC))
START = datetime(2026, 11, 1, tzinfo=UTC)


def counter(limit: Decimal, used: Decimal = Decimal(0), policy: QuotaPolicy = QuotaPolicy.HARD) -> QuotaCounter:
    return QuotaCounter(
        tenant_id="t",
        resource_type="executions",
        policy=policy,
        limit=limit,
        used=used,
        remaining=limit - used,
        period_start=START,
        period_end=add_months(START, 1),
        plan_id="p",
    )


@given(limit=limits, asks=st.lists(quantities, max_size=40))
def test_hard_counter_grants_never_exceed_the_limit(limit: Decimal, asks: list[Decimal]) -> None:
    state = counter(limit)
    now = START + timedelta(days=1)
    granted = Decimal(0)
    for ask in asks:
        if state.allows(ask, now):
            state = state.consumed(ask)
            granted += ask
        else:
            assert state.remaining < ask  # a denial is exact
        assert state.used + state.remaining == limit
        assert state.remaining >= 0
    assert granted == state.used <= limit


@given(limit=limits, asks=st.lists(quantities, max_size=20), gives=st.lists(quantities, max_size=20))
def test_release_never_takes_used_below_zero(limit: Decimal, asks: list[Decimal], gives: list[Decimal]) -> None:
    state = counter(limit, policy=QuotaPolicy.SOFT)
    for ask in asks:
        state = state.consumed(ask)
    for give in gives:
        state = state.released(give)
        assert state.used >= 0
        assert state.used + state.remaining == limit


@given(limit=limits, used=limits)
def test_soft_counter_reports_overage_past_the_limit(limit: Decimal, used: Decimal) -> None:
    check = check_from_counter(counter(limit, used, QuotaPolicy.SOFT), Decimal(1), allowed=True)
    assert check.overage == max(Decimal(0), used - limit)
    assert check.remaining == max(Decimal(0), limit - used)
    assert check.remaining - check.overage == limit - used


@given(used=limits)
def test_unlimited_counter_always_allows_and_counts(used: Decimal) -> None:
    state = counter(Decimal(0), used, QuotaPolicy.UNLIMITED)
    assert state.allows(Decimal(10**9), START)
    check = check_from_counter(state.consumed(Decimal(5)), Decimal(5), allowed=True)
    assert (check.limit, check.remaining, check.used) == (None, None, used + 5)


@given(limit=limits, shards=st.integers(min_value=1, max_value=64))
def test_split_limit_sums_exactly_and_is_even(limit: Decimal, shards: int) -> None:
    parts = split_limit(limit, shards)
    assert len(parts) == shards
    assert sum(parts, Decimal(0)) == limit
    assert all(p >= 0 for p in parts)
    if limit == limit.to_integral_value():
        assert max(parts) - min(parts) <= 1


@given(limit=limits, used=limits, shards=st.integers(min_value=1, max_value=64))
def test_spread_used_carries_every_unit_and_the_combined_view_is_exact(
    limit: Decimal, used: Decimal, shards: int
) -> None:
    limits_ = split_limit(limit, shards)
    useds = spread_used(used, limits_)
    assert sum(useds, Decimal(0)) == used
    parts = [
        QuotaCounter(
            "t",
            "r",
            QuotaPolicy.HARD,
            lim,
            u,
            lim - u,
            START,
            add_months(START, 1),
            "p",
            shard=i,
            shards=shards,
            total_limit=limit,
        )
        for i, (lim, u) in enumerate(zip(limits_, useds, strict=True))
    ]
    whole = combine_shards(parts)
    assert (whole.limit, whole.used, whole.remaining) == (limit, used, limit - used)


@given(
    start=moments,
    months=st.sampled_from([1, 12]),
    later=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3000)),
)
@settings(max_examples=200)
def test_advance_period_reaches_the_period_containing_now(start: datetime, months: int, later: timedelta) -> None:
    end = add_months(start, months)
    now = start + later
    new_start, new_end = advance_period(start, end, now)
    assert new_start <= now < new_end or (now < end and (new_start, new_end) == (start, end))
    assert new_end > new_start
    # Deterministic: two racing computations of the next period agree (same_period), so the renewal
    # webhook and the lazy rollover name the same period.
    assert advance_period(start, end, now) == (new_start, new_end)
    if now >= end:
        assert new_start >= end  # contiguous: the next periods follow the old one
        assert new_start.day == new_end.day or new_start.day > 27 or new_end.day > 27


def test_add_months_clamps_the_day() -> None:
    jan31 = datetime(2027, 1, 31, 12, tzinfo=UTC)
    assert add_months(jan31, 1) == datetime(2027, 2, 28, 12, tzinfo=UTC)
    assert add_months(jan31, 2) == datetime(2027, 3, 31, 12, tzinfo=UTC)
    feb = advance_period(jan31, add_months(jan31, 1), datetime(2027, 3, 1, tzinfo=UTC))
    assert feb == (datetime(2027, 2, 28, 12, tzinfo=UTC), datetime(2027, 3, 31, 12, tzinfo=UTC))
    # A second lazy rollover from the clamped start still lands on the billing day.
    assert advance_period(*feb, datetime(2027, 4, 1, tzinfo=UTC))[1] == datetime(2027, 4, 30, 12, tzinfo=UTC)
    assert advance_period(*feb, datetime(2027, 5, 1, tzinfo=UTC))[1] == datetime(2027, 5, 31, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [Decimal(0), Decimal(-1), Decimal("NaN"), Decimal("Infinity"), Decimal("0.0000001"), MAX_QUANTITY + 1, 1, 1.0],
    ids=["zero", "negative", "nan", "infinity", "seven-places", "max", "int", "float"],
)
def test_validate_quantity_refuses_bad_values(value: object) -> None:
    with pytest.raises(ValueError, match="quantity"):
        validate_quantity(value)  # type: ignore[arg-type]


@given(value=quantities)
def test_valid_quantities_pass_and_print_without_exponent(value: Decimal) -> None:
    assert validate_quantity(value) == value
    text = decimal_str(value)
    assert text is not None
    assert "E" not in text
    assert Decimal(text) == value


@given(limit=limits, used=limits, allowed=st.booleans())
def test_check_round_trips_through_its_stored_form(limit: Decimal, used: Decimal, allowed: bool) -> None:
    check = check_from_counter(
        counter(limit, used), Decimal("1.5"), allowed=allowed, reason=None if allowed else DenyReason.EXHAUSTED
    )
    back = EntitlementCheck.from_dict(check.to_dict())
    assert back.to_dict() == check.to_dict()


def test_ttl_cache_expires_and_evicts() -> None:
    now = [0.0]
    cache: TTLCache[str, int] = TTLCache(10, max_entries=2, clock=lambda: now[0])
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("c", 3)  # evicts the oldest
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (None, 2, 3)
    now[0] = 10.0
    assert cache.get("b") is None
    disabled: TTLCache[str, int] = TTLCache(0)
    disabled.put("a", 1)
    assert disabled.get("a") is None
