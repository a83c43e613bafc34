"""Calendar months on the account's own calendar: local dates, anchors, DST gaps and folds."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dns_lifecycle.lifecycle.calendar import (
    add_months,
    days_in_month,
    next_expiry,
    period_containing,
    period_start,
)
from dns_lifecycle.lifecycle.renewal import renewal_period

# Zones with the shapes that matter: no DST, northern and southern DST, a 30-minute DST,
# "negative" DST (Dublin), DST at midnight (Santiago), a whole skipped day (Apia, 2011).
ZONES = [
    "Asia/Shanghai",
    "America/New_York",
    "Europe/London",
    "Europe/Dublin",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "America/Santiago",
    "America/St_Johns",
    "Asia/Kathmandu",
    "Pacific/Apia",
    "UTC",
]

moments = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2060, 12, 31), timezones=st.just(UTC)
)


def local(moment: datetime, zone: str) -> datetime:
    return moment.astimezone(ZoneInfo(zone))


def wall_time_wanted(start: datetime, months: int, anchor: int, zone: str) -> datetime:
    """The naive local date-time the customer's calendar asks for."""
    here = local(start, zone)
    year, index = divmod(here.year * 12 + here.month - 1 + months, 12)
    day = min(anchor, days_in_month(year, index + 1))
    return datetime.combine(datetime(year, index + 1, day).date(), here.time())


@settings(deadline=None, max_examples=400)
@given(
    start=moments,
    zone=st.sampled_from(ZONES),
    anchor=st.integers(min_value=1, max_value=31),
    months=st.integers(min_value=-36, max_value=36),
)
def test_months_are_added_to_the_local_date_and_time_with_the_dst_rule(start, zone, anchor, months):
    """The result is UTC and shows the wanted local date and time; a time the clocks skip
    is moved forward by the jump, a time they repeat is the earlier instant."""
    tz = ZoneInfo(zone)
    wall = wall_time_wanted(start, months, anchor, zone)
    result = add_months(start, months, anchor, zone)
    assert result.tzinfo is UTC

    offsets = {wall.replace(tzinfo=tz, fold=f).utcoffset() for f in (0, 1)}
    instants = {o: (wall - o).replace(tzinfo=UTC) for o in offsets}
    shown = {o: i.astimezone(tz).replace(tzinfo=None) for o, i in instants.items()}
    real = sorted(i for o, i in instants.items() if shown[o] == wall)
    if real:
        # It exists (once, or twice in a fold): the earliest instant showing it.
        assert result == real[0]
        assert local(result, zone).replace(tzinfo=None) == wall
    else:
        # Skipped: the clock reads the offset before the jump, so it shows wall + jump.
        before, after = min(offsets), max(offsets)
        assert result == instants[before]
        assert local(result, zone).replace(tzinfo=None) == wall + (after - before)


@settings(deadline=None)
@given(
    start=moments,
    zone=st.sampled_from(ZONES),
    anchor=st.integers(min_value=1, max_value=31),
    k=st.integers(min_value=1, max_value=24),
)
def test_monthly_steps_stay_on_the_local_anchor_day(start, zone, anchor, k):
    """Renewing month after month, every expiry falls on min(anchor, month length) in the
    account's zone (unless a skipped local time pushed it past midnight)."""
    expiry = start
    for _ in range(k):
        following = next_expiry(expiry, "monthly", anchor, zone=zone)
        assert following > expiry
        shown = local(following, zone)
        wanted = min(anchor, days_in_month(shown.year, shown.month))
        pushed = wall_time_wanted(expiry, 1, anchor, zone) != shown.replace(tzinfo=None)
        assert shown.day == wanted or pushed
        expiry = following


def shanghai(*args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(UTC)


def new_york(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo("America/New_York"), fold=fold).astimezone(UTC)


def test_shanghai_31_january_midnight_renews_to_the_end_of_february_and_back():
    """31 Jan 00:00 Shanghai (30 Jan in UTC) renews to 28 Feb 00:00, then 31 Mar 00:00."""
    feb = next_expiry(shanghai(2027, 1, 31), "monthly", 31, zone="Asia/Shanghai")
    assert feb == shanghai(2027, 2, 28)
    assert next_expiry(feb, "monthly", 31, zone="Asia/Shanghai") == shanghai(2027, 3, 31)


def test_new_york_31_january_late_evening_stays_in_february():
    """31 Jan 23:59 New York (1 Feb in UTC) renews to 28 Feb 23:59 local, not 1 April."""
    feb = next_expiry(new_york(2027, 1, 31, 23, 59), "monthly", 31, zone="America/New_York")
    assert feb == new_york(2027, 2, 28, 23, 59)
    assert next_expiry(feb, "monthly", 31, zone="America/New_York") == new_york(2027, 3, 31, 23, 59)


def test_29_february_in_shanghai_renews_on_28_february_until_the_next_leap_year():
    """A yearly subscription from 29 Feb 2028 local renews on 28 Feb, then 29 Feb 2032."""
    expiry = shanghai(2028, 2, 29, 0, 30)
    seen = []
    for _ in range(4):
        expiry = next_expiry(expiry, "yearly", 29, zone="Asia/Shanghai")
        seen.append(local(expiry, "Asia/Shanghai").date().isoformat())
    assert seen == ["2029-02-28", "2030-02-28", "2031-02-28", "2032-02-29"]


def test_a_skipped_local_time_moves_forward_by_the_jump():
    """02:30 on 14 Mar 2027 does not exist in New York (02:00 -> 03:00): it becomes 03:30."""
    result = next_expiry(new_york(2027, 2, 14, 2, 30), "monthly", 14, zone="America/New_York")
    assert result == datetime(2027, 3, 14, 7, 30, tzinfo=UTC)
    assert local(result, "America/New_York").strftime("%H:%M %Z") == "03:30 EDT"


def test_a_repeated_local_time_is_the_earlier_instant():
    """01:30 on 7 Nov 2027 happens twice in New York: the first (EDT) is the expiry."""
    result = next_expiry(new_york(2027, 10, 7, 1, 30), "monthly", 7, zone="America/New_York")
    assert result == new_york(2027, 11, 7, 1, 30, fold=0)
    assert result == datetime(2027, 11, 7, 5, 30, tzinfo=UTC)


def test_a_half_hour_jump_moves_by_half_an_hour():
    """Lord Howe Island jumps 02:00 -> 02:30: 02:15 becomes 02:45."""
    zone = "Australia/Lord_Howe"
    start = datetime(2027, 9, 3, 2, 15, tzinfo=ZoneInfo(zone))
    result = add_months(start, 1, 3, zone)
    assert local(result, zone).replace(tzinfo=None) == datetime(2027, 10, 3, 2, 45)


def test_period_start_counts_back_on_the_local_calendar():
    """The period ending 31 Mar 00:00 Shanghai started 28 Feb 00:00 Shanghai."""
    assert period_start(shanghai(2027, 3, 31), "monthly", 31, zone="Asia/Shanghai") == shanghai(
        2027, 2, 28
    )


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../etc/passwd"])
def test_an_unknown_zone_is_refused(zone):
    """A zone that is not an IANA name is a ValueError naming it."""
    with pytest.raises(ValueError, match="not an IANA time zone"):
        add_months(shanghai(2027, 1, 1), 1, 1, zone)


def test_leaving_the_years_an_expiry_can_hold_is_refused():
    """A local date past year 9998 (9999 in Kiritimati) is a clear ValueError, not an
    OverflowError."""
    with pytest.raises(ValueError, match="years"):
        add_months(datetime(9998, 12, 31, 23, tzinfo=UTC), 1, 1, "Pacific/Kiritimati")


@settings(deadline=None)
@given(
    expiry=moments,
    back=st.integers(min_value=1, max_value=40 * 366 * 86_400),
    zone=st.sampled_from(ZONES),
    anchor=st.integers(min_value=1, max_value=31),
    cycle=st.sampled_from(["monthly", "yearly"]),
)
def test_the_period_containing_a_moment_is_found_counting_back_from_the_expiry(
    expiry, back, zone, anchor, cycle
):
    """For any moment before an anchored expiry, the period found holds the moment, ends
    at the expiry or at the start of the next period back, and is the k-th one back."""
    expiry = add_months(expiry, 0, anchor, zone)  # onto the anchor, as renewals leave it
    moment = expiry - timedelta(seconds=back)
    start, end, after = period_containing(moment, expiry, cycle, anchor, zone=zone)
    step = 12 if cycle == "yearly" else 1
    assert start <= moment < end
    assert start == add_months(expiry, -step * (after + 1), anchor, zone)
    assert end == (expiry if after == 0 else add_months(expiry, -step * after, anchor, zone))


def test_a_moment_at_or_after_the_expiry_is_in_no_paid_period():
    """The expiry itself is no longer paid for."""
    expiry = shanghai(2027, 3, 31)
    with pytest.raises(ValueError, match="no paid period contains it"):
        period_containing(expiry, expiry, "monthly", 31, zone="Asia/Shanghai")


def test_a_time_moved_by_a_gap_returns_to_the_anchor_time_the_next_period():
    """New York, 14 Feb 2027 02:30 EST: one month twice (through 14 Mar, when 02:30 is
    skipped) ends on 14 Apr 02:30 EDT, where two months at once end."""
    start, zone = new_york(2027, 2, 14, 2, 30), "America/New_York"
    march = renewal_period(start, "monthly", 14, zone=zone, instance_id="i")
    assert local(march.end, zone).strftime("%H:%M %Z") == "03:30 EDT"
    assert march.anchor_time == time(2, 30)
    april = renewal_period(
        march.end, "monthly", 14, zone=zone, instance_id="i", anchor_time=march.anchor_time
    )
    at_once = renewal_period(start, "monthly", 14, 2, zone=zone, instance_id="i")
    assert april.end == at_once.end == new_york(2027, 4, 14, 2, 30)
    assert april.anchor_time is None


@settings(deadline=None)
@given(
    start=moments,
    zone=st.sampled_from(ZONES),
    anchor=st.integers(min_value=1, max_value=31),
    cycle=st.sampled_from(["monthly", "yearly"]),
    periods=st.integers(min_value=2, max_value=10),
)
def test_renewing_one_period_at_a_time_ends_where_renewing_all_at_once_does(
    start, zone, anchor, cycle, periods
):
    """Whatever daylight-saving gaps lie between, n renewals of one period (each keeping
    the anchor time it returns) end at the expiry one renewal of n periods gives."""
    start = add_months(start, 0, anchor, zone)  # onto the anchor, as renewals leave it
    expiry, anchor_time = start, None
    for _ in range(periods):
        step = renewal_period(
            expiry, cycle, anchor, zone=zone, instance_id="i", anchor_time=anchor_time
        )
        expiry, anchor_time = step.end, step.anchor_time
    assert expiry == renewal_period(start, cycle, anchor, periods, zone=zone, instance_id="i").end


def test_the_period_of_a_moved_expiry_starts_at_the_anchor_time():
    """An expiry moved to 03:30 by the gap, anchored at 02:30: its period started at
    02:30 a month before, so an upgrade prices the period the customer bought."""
    zone = "America/New_York"
    start, end, after = period_containing(
        new_york(2027, 3, 1),
        new_york(2027, 3, 14, 3, 30),
        "monthly",
        14,
        zone=zone,
        anchor_time=time(2, 30),
    )
    assert (start, end, after) == (new_york(2027, 2, 14, 2, 30), new_york(2027, 3, 14, 3, 30), 0)
