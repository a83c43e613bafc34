"""Prices of renewals and prorated upgrades: Decimal, cents, half up, never negative."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dns_lifecycle.lifecycle.pricing import (
    CENT,
    period_price,
    prorated_upgrade,
    renewal_amount,
    upgrade_amount,
)

START = datetime(2027, 1, 31, 9, 30, tzinfo=UTC)
END = datetime(2027, 2, 28, 9, 30, tzinfo=UTC)
modest = settings(deadline=None)

prices = st.decimals(min_value=0, max_value=100_000, places=2, allow_nan=False)
offsets = st.integers(min_value=-10 * 86_400_000_000, max_value=40 * 86_400_000_000)


def price(text: str) -> Decimal:
    return Decimal(text)


# --- period price and renewal amount --------------------------------------------------


def test_monthly_cycle_uses_the_monthly_price():
    """A monthly period costs the monthly price."""
    assert period_price(price("30.00"), price("300.00"), "monthly") == price("30.00")


def test_yearly_cycle_uses_the_yearly_price():
    """A yearly period costs the yearly price."""
    assert period_price(price("30.00"), price("300.00"), "yearly") == price("300.00")


def test_renewal_amount_is_period_price_times_periods():
    """Three yearly periods cost three yearly prices."""
    amount = renewal_amount(price("30.00"), price("299.99"), "yearly", 3)
    assert amount == price("899.97")
    assert isinstance(amount, Decimal)


def test_renewal_amount_of_no_periods_is_refused():
    """A renewal buys at least one period."""
    with pytest.raises(ValueError, match="at least 1"):
        renewal_amount(price("30.00"), price("300.00"), "monthly", 0)


def test_unknown_cycle_is_refused_when_pricing():
    """Pricing an unknown billing cycle is a ValueError."""
    with pytest.raises(ValueError, match="weekly"):
        period_price(price("30.00"), price("300.00"), "weekly")


def test_float_price_is_refused():
    """A float price is a TypeError: money is never a float."""
    with pytest.raises(TypeError, match="Decimal"):
        period_price(30.0, price("300.00"), "monthly")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["-1.00", "NaN", "Infinity"])
def test_negative_or_non_finite_price_is_refused(bad):
    """A negative, NaN or infinite price is a ValueError."""
    with pytest.raises(ValueError, match="not a price"):
        period_price(Decimal(bad), price("300.00"), "monthly")


@modest
@given(monthly=prices, yearly=prices, periods=st.integers(1, 50))
def test_renewal_amount_is_whole_cents(monthly, yearly, periods):
    """A renewal amount is a Decimal with exactly two places."""
    for cycle in ("monthly", "yearly"):
        amount = renewal_amount(monthly, yearly, cycle, periods)
        assert isinstance(amount, Decimal)
        assert amount == amount.quantize(CENT)
        assert amount.as_tuple().exponent == -2


# --- prorated upgrade ------------------------------------------------------------------


def test_upgrade_at_period_start_charges_the_full_difference():
    """At the very start of the period the whole difference is due."""
    assert prorated_upgrade(price("10.00"), price("25.50"), START, END, START) == price("15.50")


def test_upgrade_before_period_start_charges_the_full_difference():
    """A moment before the period counts as its start, not as more than a period."""
    earlier = START - timedelta(days=3)
    assert prorated_upgrade(price("10.00"), price("25.50"), START, END, earlier) == price("15.50")


def test_upgrade_at_period_end_charges_nothing():
    """At the end of the period nothing is left to pay for."""
    assert prorated_upgrade(price("10.00"), price("25.50"), START, END, END) == price("0.00")


def test_upgrade_after_period_end_charges_nothing():
    """Past the end the remaining time is clipped at zero, never negative."""
    later = END + timedelta(days=2)
    assert prorated_upgrade(price("10.00"), price("25.50"), START, END, later) == price("0.00")


def test_upgrade_halfway_charges_half_the_difference():
    """Halfway through the period half the difference is due, in exact cents."""
    halfway = START + (END - START) / 2
    assert prorated_upgrade(price("10.00"), price("30.00"), START, END, halfway) == price("10.00")


def test_half_a_cent_rounds_up():
    """An exact half cent rounds up (0.015 -> 0.02), as floats would not reliably do."""
    halfway = START + (END - START) / 2
    assert prorated_upgrade(price("1.00"), price("1.03"), START, END, halfway) == price("0.02")
    assert prorated_upgrade(price("1.00"), price("1.01"), START, END, halfway) == price("0.01")


def test_just_below_half_a_cent_rounds_down():
    """A hair under half a cent rounds down: only the final rounding happens."""
    # One microsecond past halfway leaves a little less than half of 0.01.
    halfway = START + (END - START) / 2 + timedelta(microseconds=1)
    assert prorated_upgrade(price("1.00"), price("1.01"), START, END, halfway) == price("0.00")


def test_a_third_of_the_period_left():
    """Two thirds through a 30-day period a third of the difference is due, rounded."""
    start = datetime(2027, 4, 30, tzinfo=UTC)
    end = datetime(2027, 5, 30, tzinfo=UTC)
    as_of = start + timedelta(days=20)
    # 100.00 / 3 = 33.333... -> 33.33
    assert prorated_upgrade(price("0.00"), price("100.00"), start, end, as_of) == price("33.33")


def test_same_price_costs_nothing():
    """Equal prices prorate to zero."""
    halfway = START + (END - START) / 2
    assert prorated_upgrade(price("10.00"), price("10.00"), START, END, halfway) == price("0.00")


def test_cheaper_new_price_is_refused():
    """A new price below the old one is a downgrade and raises a ValueError."""
    with pytest.raises(ValueError, match="never costs less"):
        prorated_upgrade(price("25.00"), price("10.00"), START, END, START)


def test_empty_period_is_refused():
    """A period that ends when (or before) it starts is a ValueError."""
    with pytest.raises(ValueError, match="end after it starts"):
        prorated_upgrade(price("10.00"), price("20.00"), END, START, START)


def test_naive_moment_is_refused_in_proration():
    """A naive as_of is refused rather than compared against UTC."""
    with pytest.raises(ValueError, match="naive"):
        prorated_upgrade(price("10.00"), price("20.00"), START, END, datetime(2027, 2, 1))


def test_float_price_is_refused_in_proration():
    """A float price is refused in proration too."""
    with pytest.raises(TypeError, match="Decimal"):
        prorated_upgrade(10.0, price("20.00"), START, END, START)  # type: ignore[arg-type]


@modest
@given(old=prices, extra=prices, offset_us=offsets)
def test_proration_is_whole_cents_between_zero_and_the_difference(old, extra, offset_us):
    """Any proration is a Decimal of whole cents in [0, new - old]."""
    new = old + extra
    as_of = START + timedelta(microseconds=offset_us)
    amount = prorated_upgrade(old, new, START, END, as_of)
    assert isinstance(amount, Decimal)
    assert amount.as_tuple().exponent == -2
    assert Decimal("0.00") <= amount <= new - old


@modest
@given(old=prices, extra=prices, a=offsets, b=offsets)
def test_proration_never_grows_as_time_passes(old, extra, a, b):
    """Later in the period the upgrade never costs more."""
    earlier, later = sorted((a, b))
    new = old + extra
    first = prorated_upgrade(old, new, START, END, START + timedelta(microseconds=earlier))
    second = prorated_upgrade(old, new, START, END, START + timedelta(microseconds=later))
    assert second <= first


@modest
@given(old=prices, extra=prices, offset_us=offsets)
def test_proration_matches_exact_rational_arithmetic(old, extra, offset_us):
    """The amount equals the exact fraction of the difference, rounded half up to cents."""
    from fractions import Fraction

    new = old + extra
    as_of = START + timedelta(microseconds=offset_us)
    total = (END - START) // timedelta(microseconds=1)
    remaining = min(max((END - as_of) // timedelta(microseconds=1), 0), total)
    exact_cents = Fraction(new - old) * 100 * remaining / total
    expected_cents = int(exact_cents + Fraction(1, 2))  # half up, for non-negative values
    assert prorated_upgrade(old, new, START, END, as_of) == Decimal(expected_cents) * CENT


# --- an upgrade over prepaid periods ----------------------------------------------------


def test_upgrade_amount_adds_whole_differences_to_the_prorated_part():
    """Halfway through the period with two more paid ahead: half plus two differences."""
    halfway = START + (END - START) / 2
    amount = upgrade_amount(price("10.00"), price("30.00"), START, END, halfway, 2)
    assert amount == price("50.00")
    assert amount.as_tuple().exponent == -2


def test_upgrade_amount_with_no_period_ahead_is_the_proration():
    """Nothing paid ahead: exactly what prorated_upgrade charges, rounded the same way."""
    as_of = START + timedelta(days=9, hours=7)
    assert upgrade_amount(price("1.00"), price("1.03"), START, END, as_of, 0) == prorated_upgrade(
        price("1.00"), price("1.03"), START, END, as_of
    )


@pytest.mark.parametrize(("bad", "error"), [(-1, ValueError), (True, TypeError), (1.0, TypeError)])
def test_upgrade_amount_refuses_a_count_of_periods_that_is_not_one(bad, error):
    """A negative, boolean or float count of whole periods is refused."""
    with pytest.raises(error, match="whole_periods_after"):
        upgrade_amount(price("10.00"), price("30.00"), START, END, START, bad)
