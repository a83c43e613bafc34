"""Calendar-month arithmetic: anchors, month ends, leap days, negative steps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dns_lifecycle.lifecycle.calendar import (
    add_months,
    days_in_month,
    next_expiry,
    period_months,
    period_start,
)

utc_moments = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2400, 12, 31), timezones=st.just(UTC)
)
anchors = st.integers(min_value=1, max_value=31)
cycles = st.sampled_from(["monthly", "yearly"])
modest = settings(deadline=None)


def at(year: int, month: int, day: int, hour: int = 9, minute: int = 30) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def month_index(moment: datetime) -> int:
    return moment.year * 12 + moment.month - 1


def anchored(moment: datetime, anchor: int) -> datetime:
    """``moment`` moved within its own month onto its anchor day."""
    return moment.replace(day=min(anchor, days_in_month(moment.year, moment.month)))


# --- properties -------------------------------------------------------------------------


@modest
@given(start=utc_moments, anchor=anchors, k=st.integers(min_value=1, max_value=60))
def test_stepping_one_month_at_a_time_equals_one_jump(start, anchor, k):
    """k single-month steps with the same anchor land where one k-month step does."""
    stepped = start
    for _ in range(k):
        stepped = add_months(stepped, 1, anchor, "UTC")
    assert stepped == add_months(start, k, anchor, "UTC")


@modest
@given(start=utc_moments, anchor=anchors, months=st.integers(min_value=-240, max_value=240))
def test_result_day_is_anchor_clipped_to_month_length(start, anchor, months):
    """The result is in the target month, on min(anchor, days in that month)."""
    result = add_months(start, months, anchor, "UTC")
    assert month_index(result) == month_index(start) + months
    assert result.day == min(anchor, days_in_month(result.year, result.month))


@modest
@given(start=utc_moments, anchor=anchors, cycle=cycles, n=st.integers(min_value=1, max_value=40))
def test_consecutive_expiries_advance_exactly_one_period(start, anchor, cycle, n):
    """Each renewal is strictly later and exactly one period later by month index."""
    expiry = anchored(start, anchor)
    for _ in range(n):
        following = next_expiry(expiry, cycle, anchor, zone="UTC")
        assert following > expiry
        assert month_index(following) - month_index(expiry) == period_months(cycle)
        expiry = following


@modest
@given(start=utc_moments, anchor=anchors, cycle=cycles, periods=st.integers(1, 30))
def test_renewing_n_periods_at_once_equals_n_renewals(start, anchor, cycle, periods):
    """Buying n periods at once gives the same expiry as n single renewals."""
    expiry = anchored(start, anchor)
    one_by_one = expiry
    for _ in range(periods):
        one_by_one = next_expiry(one_by_one, cycle, anchor, zone="UTC")
    assert next_expiry(expiry, cycle, anchor, periods, zone="UTC") == one_by_one


@modest
@given(start=utc_moments, cycle=cycles)
def test_period_start_undoes_next_expiry(start, cycle):
    """With the anchor on the expiry's own day, one period back from the next expiry is it."""
    following = next_expiry(start, cycle, start.day, zone="UTC")
    assert period_start(following, cycle, start.day, zone="UTC") == start


@modest
@given(start=utc_moments, anchor=anchors, months=st.integers(min_value=1, max_value=240))
def test_negative_months_round_trip_for_an_anchored_moment(start, anchor, months):
    """Going forward then back by the same months returns to an anchored moment."""
    moment = anchored(start, anchor)
    assert add_months(add_months(moment, months, anchor, "UTC"), -months, anchor, "UTC") == moment


@modest
@given(
    start=st.datetimes(
        min_value=datetime(1900, 1, 1),
        max_value=datetime(2400, 12, 31),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=8)), timezone(-timedelta(hours=5))]
        ),
    ),
    anchor=anchors,
    months=st.integers(min_value=-120, max_value=120),
)
def test_local_time_of_day_is_kept_and_the_result_is_utc(start, anchor, months):
    """Only the local date changes (hour to microsecond stay as given); the result is UTC."""
    result = add_months(start, months, anchor, start.tzinfo)
    assert result.tzinfo is UTC
    assert result.astimezone(start.tzinfo).time() == start.time()


# --- examples ---------------------------------------------------------------------------


def test_31st_goes_to_28_february_in_a_common_year():
    """31 Jan 2027 + 1 month (anchor 31) is 28 Feb 2027."""
    assert add_months(at(2027, 1, 31), 1, 31, "UTC") == at(2027, 2, 28)


def test_31st_goes_to_29_february_in_a_leap_year():
    """31 Jan 2028 + 1 month (anchor 31) is 29 Feb 2028."""
    assert add_months(at(2028, 1, 31), 1, 31, "UTC") == at(2028, 2, 29)


def test_anchor_31_comes_back_to_31_march_after_february():
    """From 28 Feb with anchor 31, the next monthly expiry is 31 Mar."""
    assert next_expiry(at(2027, 2, 28), "monthly", 31, zone="UTC") == at(2027, 3, 31)


def test_anchor_31_follows_month_ends_through_the_year():
    """A monthly subscription on the 31st expires on every month's last day."""
    expiry = at(2027, 1, 31)
    seen = []
    for _ in range(12):
        expiry = next_expiry(expiry, "monthly", 31, zone="UTC")
        seen.append(expiry.date().isoformat())
    assert seen == [
        "2027-02-28",
        "2027-03-31",
        "2027-04-30",
        "2027-05-31",
        "2027-06-30",
        "2027-07-31",
        "2027-08-31",
        "2027-09-30",
        "2027-10-31",
        "2027-11-30",
        "2027-12-31",
        "2028-01-31",
    ]


def test_yearly_29_february_waits_for_the_next_leap_year():
    """29 Feb 2028 yearly renews on 28 Feb 2029, 2030, 2031, then 29 Feb 2032."""
    expiry = at(2028, 2, 29)
    seen = []
    for _ in range(4):
        expiry = next_expiry(expiry, "yearly", 29, zone="UTC")
        seen.append(expiry.date().isoformat())
    assert seen == ["2029-02-28", "2030-02-28", "2031-02-28", "2032-02-29"]


def test_2100_is_not_a_leap_year():
    """A leap-day anchor in 2096 renews yearly to 28 Feb 2100 (a century, not leap)."""
    assert next_expiry(at(2096, 2, 29), "yearly", 29, zone="UTC") == at(2097, 2, 28)
    assert add_months(at(2096, 2, 29), 48, 29, "UTC") == at(2100, 2, 28)


def test_30_january_goes_to_end_of_february_then_30_march():
    """30 Jan (anchor 30) renews to 28 Feb, then back to 30 Mar."""
    first = next_expiry(at(2027, 1, 30), "monthly", 30, zone="UTC")
    assert first == at(2027, 2, 28)
    assert next_expiry(first, "monthly", 30, zone="UTC") == at(2027, 3, 30)


def test_first_of_month_stays_on_the_first():
    """An anchor on the 1st is never clipped."""
    assert next_expiry(at(2027, 2, 1), "monthly", 1, zone="UTC") == at(2027, 3, 1)
    assert next_expiry(at(2027, 1, 1), "monthly", 1, periods=5, zone="UTC") == at(2027, 6, 1)


def test_december_rolls_into_january_of_next_year():
    """December + 1 month is January of the following year."""
    assert next_expiry(at(2027, 12, 31), "monthly", 31, zone="UTC") == at(2028, 1, 31)


def test_january_minus_one_month_is_december_of_previous_year():
    """A negative step crosses the year boundary backwards."""
    assert add_months(at(2028, 1, 15), -1, 15, "UTC") == at(2027, 12, 15)


def test_period_start_of_31_march_with_anchor_31_is_end_of_february():
    """The monthly period ending 31 Mar 2028 (anchor 31) began on 29 Feb 2028."""
    assert period_start(at(2028, 3, 31), "monthly", 31, zone="UTC") == at(2028, 2, 29)


def test_period_start_of_a_yearly_period_is_one_year_back():
    """The yearly period ending 28 Feb 2029 (anchor 29) began on 29 Feb 2028."""
    assert period_start(at(2029, 2, 28), "yearly", 29, zone="UTC") == at(2028, 2, 29)


def test_several_periods_in_one_renewal():
    """Renewing 3 yearly periods moves the expiry 3 years on."""
    assert next_expiry(at(2027, 6, 15), "yearly", 15, periods=3, zone="UTC") == at(2030, 6, 15)


def test_period_months_of_each_cycle():
    """monthly is 1 month, yearly is 12."""
    assert period_months("monthly") == 1
    assert period_months("yearly") == 12


# --- refusals ---------------------------------------------------------------------------


def test_naive_datetime_is_refused():
    """A datetime without a time zone is an error, not guessed to be UTC."""
    with pytest.raises(ValueError, match="naive"):
        add_months(datetime(2027, 1, 31), 1, 31, "UTC")


def test_naive_expiry_is_refused_by_next_expiry():
    """next_expiry refuses a naive expiry too."""
    with pytest.raises(ValueError, match="naive"):
        next_expiry(datetime(2027, 1, 31), "monthly", 31, zone="UTC")


@pytest.mark.parametrize("anchor", [0, 32, -1])
def test_anchor_outside_1_to_31_is_refused(anchor):
    """An anchor day that is no day of any month is an error naming the range."""
    with pytest.raises(ValueError, match=r"1\.\.31"):
        add_months(at(2027, 1, 1), 1, anchor, "UTC")


@pytest.mark.parametrize("cycle", ["weekly", "Monthly", "", None])
def test_unknown_billing_cycle_is_refused(cycle):
    """An unknown billing cycle is a ValueError that lists the known ones."""
    with pytest.raises(ValueError, match="'monthly', 'yearly'"):
        period_months(cycle)


@pytest.mark.parametrize("periods", [0, -1])
def test_renewal_of_no_periods_is_refused(periods):
    """A renewal buys at least one period."""
    with pytest.raises(ValueError, match="at least 1"):
        next_expiry(at(2027, 1, 1), "monthly", 1, periods=periods, zone="UTC")


def test_months_must_be_an_int():
    """A bool or float number of months is a type error, not silently one month."""
    with pytest.raises(TypeError):
        add_months(at(2027, 1, 1), True, 1, "UTC")
    with pytest.raises(TypeError):
        add_months(at(2027, 1, 1), 1.0, 1, "UTC")  # type: ignore[arg-type]


def test_leaving_the_datetime_range_is_a_clear_error():
    """Moving past year 9999 is a ValueError saying so."""
    with pytest.raises(ValueError, match="years"):
        add_months(datetime(9999, 12, 1, tzinfo=UTC), 1, 1, "UTC")
