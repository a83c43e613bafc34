"""Calendar-month arithmetic for subscription periods (the "Dates" section of lifecycle.md).

A month is a calendar month, not 30 days. A subscription remembers the day of the month
it renews on (its *anchor*): renewing a subscription anchored on the 31st lands on the
last day of a shorter month and comes back to the 31st after it, and a yearly
subscription taken out on 29 February renews on 28 February until the next leap year.
The anchor is what makes that possible: the day of the current expiry alone cannot tell
"28 February, anchored on the 28th" from "28 February, anchored on the 31st".

The calendar is the account's own: months are counted on the local date and time in
the account's time zone (an IANA name), the anchor is a local day of the month
(``Instance.anchor_day``), and only the result is turned back into UTC for storage.
A Shanghai subscription expiring at 00:00 local on 31 January thus renews to 00:00
local on the last day of February, whatever UTC date that is. How a local time that a
daylight-saving change skips or repeats is resolved is said in :func:`add_months`.

Everything here is a pure function of its arguments: no clock, no database.
"""

from __future__ import annotations

from datetime import MAXYEAR, MINYEAR, UTC, datetime, time, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from models.types import BILLING_CYCLES, BillingCycle

_MONTHS: dict[BillingCycle, int] = {"monthly": 1, "yearly": 12}

_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


# The last year an expiry can reach: one year of slack below datetime's own limit, as
# the local date may sit a day off the UTC one.
LAST_YEAR = MAXYEAR - 1


class BeyondTheCalendar(ValueError):
    """A date moved out of the years an expiry can hold."""


def is_leap_year(year: int) -> bool:
    """True if ``year`` has a 29 February (proleptic Gregorian calendar)."""
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def days_in_month(year: int, month: int) -> int:
    """The number of days in ``month`` (1..12) of ``year``."""
    if not 1 <= month <= 12:
        raise ValueError(f"month {month!r} is not a month: give 1..12")
    if month == 2 and is_leap_year(year):
        return 29
    return _DAYS_IN_MONTH[month - 1]


def zone_of(zone: str | tzinfo) -> tzinfo:
    """The time zone named ``zone`` (an IANA name such as "Asia/Shanghai"), or ``zone``."""
    if isinstance(zone, tzinfo):
        return zone
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"time zone {zone!r} is not an IANA time zone name") from None


def local_day(moment: datetime, zone: str | tzinfo) -> int:
    """The day of the month of ``moment`` on the calendar of ``zone``."""
    _require_aware(moment, "moment")
    return moment.astimezone(zone_of(zone)).day


def add_months(
    moment: datetime,
    months: int,
    anchor_day: int,
    zone: str | tzinfo,
    anchor_time: time | None = None,
) -> datetime:
    """``moment`` moved by ``months`` calendar months of ``zone`` onto the anchor day, in UTC.

    ``moment`` is read as a local date and time in ``zone``. The result is in local
    month ``month + months`` (``months`` may be negative), on local day
    ``min(anchor_day, days in that month)``, at the local time of day ``anchor_time``
    (by default that of ``moment``). Neither the day nor the time of ``moment`` decides
    when an anchor is given: 28 Feb + 1 month with anchor 31 is 31 Mar, and an expiry
    moved from 02:30 to 03:30 by a daylight-saving gap, anchored at 02:30, renews to
    02:30 again.

    Daylight-saving changes, as a wall clock handles them:

    - a local time that does not exist on the target day (the clocks jump over it, e.g.
      02:30 when they go from 02:00 to 03:00) is moved forward by the length of the
      jump (03:30): the instant is the one the clock would have shown without the jump;
    - a local time that exists twice (the clocks go back over it) is the earlier of the
      two instants (``fold=0``, still on the offset before the change).

    Either way the result is exactly one instant, returned in UTC. A time moved forward
    by a jump is moved for that expiry only: the next period counts from the anchor
    time (:func:`anchor_time_to_keep` says when an instance must store it), so renewing
    twice by one period ends where renewing once by two does.
    """
    _require_aware(moment, "moment")
    _require_anchor(anchor_day)
    _require_int(months, "months")
    tz = zone_of(zone)
    local = moment.astimezone(tz)
    if anchor_time is not None:
        local = local.replace(
            hour=anchor_time.hour,
            minute=anchor_time.minute,
            second=anchor_time.second,
            microsecond=anchor_time.microsecond,
        )
    # Count months from year 0 so that negative steps and year changes need no cases.
    year, month_index = divmod(local.year * 12 + (local.month - 1) + months, 12)
    # One year of slack each way: the local date may sit a day off the UTC one.
    if not MINYEAR < year <= LAST_YEAR:
        raise BeyondTheCalendar(
            f"{moment.isoformat()} moved by {months} months leaves the years "
            f"{MINYEAR + 1}..{LAST_YEAR} that an expiry can hold: use a smaller number "
            "of months"
        )
    month = month_index + 1
    day = min(anchor_day, days_in_month(year, month))
    wall = local.replace(tzinfo=None, fold=0, year=year, month=month, day=day)
    # fold=0 reads a repeated time on the earlier offset, and a skipped time on the
    # offset before the jump, which lands the instant after the jump by its length.
    return wall.replace(tzinfo=tz).astimezone(UTC)


def anchor_time_to_keep(expires_at: datetime, anchor_time: time, zone: str | tzinfo) -> time | None:
    """What an instance stores as its anchor time once it expires at ``expires_at``,
    counted onto ``anchor_time``: None when the expiry shows that local time itself, the
    anchor time when a daylight-saving gap moved the expiry off it (so that the next
    period returns to it)."""
    _require_aware(expires_at, "expires_at")
    shown = expires_at.astimezone(zone_of(zone)).time()
    return None if shown == anchor_time.replace(tzinfo=None) else anchor_time


def local_time_of_day(expires_at: datetime, anchor_time: time | None, zone: str | tzinfo) -> time:
    """The local time of day a subscription renews at: its stored anchor time, or else
    that of its expiry in ``zone``."""
    if anchor_time is not None:
        return anchor_time
    _require_aware(expires_at, "expires_at")
    return expires_at.astimezone(zone_of(zone)).time()


def period_months(billing_cycle: str) -> int:
    """The length of one billing period in months: 1 for "monthly", 12 for "yearly"."""
    try:
        return _MONTHS[billing_cycle]  # type: ignore[index]
    except (KeyError, TypeError):
        raise ValueError(
            f"billing cycle {billing_cycle!r} is not known: use one of "
            f"{', '.join(repr(c) for c in BILLING_CYCLES)}"
        ) from None


def next_expiry(
    expires_at: datetime,
    billing_cycle: str,
    anchor_day: int,
    periods: int = 1,
    *,
    zone: str | tzinfo,
    anchor_time: time | None = None,
) -> datetime:
    """The expiry after renewing for ``periods`` billing periods (one by default), counted
    on the calendar of ``zone``, the account's time zone, at the local time of day
    ``anchor_time`` (by default that of ``expires_at``).

    Renewal always extends from the current expiry, never from "now": an instance
    renewed early loses no time and one renewed in its grace period gains none.
    """
    _require_int(periods, "periods")
    if periods < 1:
        raise ValueError(f"periods {periods!r} must be at least 1: a renewal buys whole periods")
    return add_months(
        expires_at, period_months(billing_cycle) * periods, anchor_day, zone, anchor_time
    )


def period_start(
    expires_at: datetime,
    billing_cycle: str,
    anchor_day: int,
    *,
    zone: str | tzinfo,
    anchor_time: time | None = None,
) -> datetime:
    """The start of the period that ends at ``expires_at``: one billing period back on
    the calendar of ``zone``, at ``anchor_time`` (by default that of ``expires_at``)."""
    return add_months(expires_at, -period_months(billing_cycle), anchor_day, zone, anchor_time)


def period_containing(
    moment: datetime,
    expires_at: datetime,
    billing_cycle: str,
    anchor_day: int,
    *,
    zone: str | tzinfo,
    anchor_time: time | None = None,
) -> tuple[datetime, datetime, int]:
    """The paid billing period that contains ``moment``, and how many whole periods
    follow it up to ``expires_at``: ``(start, end, whole_periods_after)``.

    The periods are counted back from ``expires_at`` on the calendar of ``zone``, one
    billing period at a time onto the anchor day, as renewals count them forward: the
    k-th period back starts ``k`` periods before the expiry (:func:`add_months`), at
    ``anchor_time`` (by default that of ``expires_at``). A period holds its start, not
    its end. ``moment`` must be before ``expires_at``.
    """
    _require_aware(moment, "moment")
    _require_aware(expires_at, "expires_at")
    if moment >= expires_at:
        raise ValueError(
            f"{moment.isoformat()} is not before the expiry {expires_at.isoformat()}: "
            "no paid period contains it"
        )
    step = period_months(billing_cycle)
    tz = zone_of(zone)

    def start(k: int) -> datetime:
        return add_months(expires_at, -k * step, anchor_day, tz, anchor_time)

    # A first guess from the local months between the two, then a step or two to the
    # period that holds ``moment``: start(k) <= moment < start(k - 1).
    here, end = moment.astimezone(tz), expires_at.astimezone(tz)
    k = max(1, ((end.year - here.year) * 12 + end.month - here.month) // step)
    while start(k) > moment:
        k += 1
    while k > 1 and start(k - 1) <= moment:
        k -= 1
    return start(k), expires_at if k == 1 else start(k - 1), k - 1


def _require_aware(moment: datetime, name: str) -> None:
    if not isinstance(moment, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"{name} {moment.isoformat()} is naive: give it a time zone (expiries are UTC)"
        )


def _require_anchor(anchor_day: int) -> None:
    _require_int(anchor_day, "anchor_day")
    if not 1 <= anchor_day <= 31:
        raise ValueError(f"anchor_day {anchor_day!r} is not a day of the month: give 1..31")


def _require_int(value: int, name: str) -> None:
    # bool is an int subclass; True months is a bug, not one month.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
