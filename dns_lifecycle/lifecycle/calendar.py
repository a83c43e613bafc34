"""Calendar-month arithmetic for subscription periods (the "Dates" section of lifecycle.md).

A month is a calendar month, not 30 days. A subscription remembers the day of the month
it renews on (its *anchor*): renewing a subscription anchored on the 31st lands on the
last day of a shorter month and comes back to the 31st after it, and a yearly
subscription taken out on 29 February renews on 28 February until the next leap year.
The anchor is what makes that possible: the day of the current expiry alone cannot tell
"28 February, anchored on the 28th" from "28 February, anchored on the 31st".

Everything here is a pure function of its arguments: no clock, no database.
"""

from __future__ import annotations

from datetime import MAXYEAR, MINYEAR, datetime

from models.types import BILLING_CYCLES, BillingCycle

_MONTHS: dict[BillingCycle, int] = {"monthly": 1, "yearly": 12}

_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


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


def add_months(moment: datetime, months: int, anchor_day: int) -> datetime:
    """``moment`` moved by ``months`` calendar months onto the anchor day.

    The result is in month ``moment.month + months`` (``months`` may be negative), on
    day ``min(anchor_day, days in that month)``, at the same time of day and with the
    same ``tzinfo`` as ``moment``. The day of ``moment`` itself is not used: the anchor
    decides, so 28 Feb + 1 month with anchor 31 is 31 Mar.
    """
    _require_aware(moment, "moment")
    _require_anchor(anchor_day)
    _require_int(months, "months")
    # Count months from year 0 so that negative steps and year changes need no cases.
    year, month_index = divmod(moment.year * 12 + (moment.month - 1) + months, 12)
    if not MINYEAR <= year <= MAXYEAR:
        raise ValueError(
            f"{moment.isoformat()} moved by {months} months leaves the years "
            f"{MINYEAR}..{MAXYEAR} that a datetime can hold: use a smaller number of months"
        )
    month = month_index + 1
    day = min(anchor_day, days_in_month(year, month))
    return moment.replace(year=year, month=month, day=day)


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
    expires_at: datetime, billing_cycle: str, anchor_day: int, periods: int = 1
) -> datetime:
    """The expiry after renewing for ``periods`` billing periods (one by default).

    Renewal always extends from the current expiry, never from "now": an instance
    renewed early loses no time and one renewed in its grace period gains none.
    """
    _require_int(periods, "periods")
    if periods < 1:
        raise ValueError(f"periods {periods!r} must be at least 1: a renewal buys whole periods")
    return add_months(expires_at, period_months(billing_cycle) * periods, anchor_day)


def period_start(expires_at: datetime, billing_cycle: str, anchor_day: int) -> datetime:
    """The start of the period that ends at ``expires_at``: one billing period back."""
    return add_months(expires_at, -period_months(billing_cycle), anchor_day)


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
