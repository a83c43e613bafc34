"""Days away on the account's calendar: today, tomorrow, later, at the edges of the day,
across daylight-saving changes and in several zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dns_lifecycle.lifecycle.when import days_away

SHANGHAI = ZoneInfo("Asia/Shanghai")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
BERLIN = ZoneInfo("Europe/Berlin")


def _at(zone, *parts):
    return datetime(*parts, tzinfo=zone)


def test_later_the_same_local_day_is_today():
    """13:00 to 23:59 the same local day is today, though 11 hours lie between."""
    away = days_away(_at(SHANGHAI, 2027, 1, 2, 23, 59), _at(SHANGHAI, 2027, 1, 2, 13, 0), SHANGHAI)
    assert (away.days, away.word) == (0, "today")


def test_one_minute_past_midnight_is_tomorrow():
    """23:59 to 00:00 the next local day is tomorrow, though one minute lies between."""
    away = days_away(_at(SHANGHAI, 2027, 1, 3, 0, 0), _at(SHANGHAI, 2027, 1, 2, 23, 59), SHANGHAI)
    assert (away.days, away.word) == (1, "tomorrow")


def test_nearly_two_days_ahead_by_the_clock_is_still_tomorrow():
    """00:00 to 23:59 the next day (47 h 59 min short of two days) is tomorrow."""
    away = days_away(_at(SHANGHAI, 2027, 1, 3, 23, 59), _at(SHANGHAI, 2027, 1, 2, 0, 0), SHANGHAI)
    assert away.word == "tomorrow"


def test_days_are_counted_on_local_dates_not_hours():
    """8 local days ahead is 8 days, whatever the hours of the two moments."""
    away = days_away(_at(SHANGHAI, 2027, 1, 10, 0, 30), _at(SHANGHAI, 2027, 1, 2, 23, 0), SHANGHAI)
    assert (away.days, away.word) == (8, "later")


def test_an_earlier_day_is_past():
    """A moment on an earlier local day than as_of is past."""
    away = days_away(_at(SHANGHAI, 2027, 1, 1, 23, 0), _at(SHANGHAI, 2027, 1, 2, 1, 0), SHANGHAI)
    assert (away.days, away.word) == (-1, "past")


def test_the_zone_decides_which_day_it_is():
    """The same two instants are today in Shanghai and tomorrow in Los Angeles."""
    as_of = datetime(2027, 1, 2, 5, 0, tzinfo=UTC)  # 13:00 Shanghai, 21:00 the 1st in LA
    moment = datetime(2027, 1, 2, 15, 59, tzinfo=UTC)  # 23:59 Shanghai, 07:59 the 2nd in LA
    assert days_away(moment, as_of, "Asia/Shanghai").word == "today"
    assert days_away(moment, as_of, "America/Los_Angeles").word == "tomorrow"


@pytest.mark.parametrize(
    ("zone", "as_of", "moment"),
    [
        # Spring forward in Los Angeles (14 March 2027): the day has 23 hours.
        (LOS_ANGELES, (2027, 3, 13, 23, 30), (2027, 3, 14, 23, 30)),
        # Fall back in Berlin (31 October 2027): the day has 25 hours.
        (BERLIN, (2027, 10, 30, 0, 0), (2027, 10, 31, 23, 59)),
    ],
    ids=["spring-forward", "fall-back"],
)
def test_a_daylight_saving_day_is_one_day(zone, as_of, moment):
    """Across a daylight-saving change the next local day is tomorrow, however long."""
    away = days_away(_at(zone, *moment), _at(zone, *as_of), zone)
    assert (away.days, away.word) == (1, "tomorrow")


def test_the_23_hours_before_a_spring_forward_midnight_span_one_day():
    """Exactly 23 hours after 00:00 on a spring-forward day is 00:00 the next day."""
    as_of = _at(LOS_ANGELES, 2027, 3, 14, 0, 0)
    moment = (as_of.astimezone(UTC) + timedelta(hours=23)).astimezone(LOS_ANGELES)
    assert moment.hour == 0 and days_away(moment, as_of, LOS_ANGELES).word == "tomorrow"


def test_the_local_date_and_time_are_given_in_the_zone():
    """The result carries the moment in the zone, for the wording of the date."""
    away = days_away(
        datetime(2027, 1, 2, 16, 0, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC), SHANGHAI
    )
    assert (away.on.isoformat(), away.local.hour) == ("2027-01-03", 0)


def test_a_naive_time_is_refused():
    """A time without a zone cannot be placed on a calendar."""
    with pytest.raises(ValueError, match="as_of .* has no time zone"):
        days_away(datetime(2027, 1, 2, tzinfo=UTC), datetime(2027, 1, 1), SHANGHAI)
