"""The fleet outlook: what the coming days hold, day by day on the operator's calendar.

A day is a calendar day in the operator's time zone (``Settings.operator_timezone``),
from its local midnight to the next; the first day is the one ``as_of`` falls in. Each
event is counted on the day its moment falls in:

- an *expiry* at the instance's expiry (active instances);
- an *expected auto-renewal* when the renewal order falls due, ``renewal_lead_days``
  x 24 h before the expiry (active instances with auto-renewal on); an account *falls
  short* on a day when its balance today does not cover its renewals due that day and
  on the earlier days of the outlook (top-ups to come are not known);
- a *grace period ending* at ``expiry + grace_days`` x 24 h (active and expired
  instances): released then unless renewed;
- a *release due* for those of them that nothing renews by itself: auto-renewal off,
  or already expired (auto-renewal only renews before the expiry);
- a *ticket to open* for each domain of a release due that release cannot switch
  itself (another registrar's, or locked: rule 7).

Pure functions of their arguments; the store counts, in SQL, with these boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from dns_lifecycle.lifecycle.calendar import zone_of

OUTLOOK_DAYS = 30


def outlook_days(as_of: datetime, zone: str, days: int = OUTLOOK_DAYS) -> list[date]:
    """The ``days`` local dates of the outlook, from the one ``as_of`` falls in."""
    first = as_of.astimezone(zone_of(zone)).date()
    return [first + timedelta(days=i) for i in range(days)]


def day_boundaries(dates: list[date], zone: str) -> list[datetime]:
    """The local midnights that start each of ``dates`` and end the last, in UTC: one
    more than ``dates`` (a day across a daylight-saving change is 23 or 25 hours)."""
    tz = zone_of(zone)
    ends = [*dates, dates[-1] + timedelta(days=1)]
    return [datetime.combine(d, time(0), tzinfo=tz).astimezone(UTC) for d in ends]


@dataclass(frozen=True)
class OutlookDay:
    """What one day of the outlook holds."""

    day: date
    expiries: int = 0
    auto_renewals: int = 0
    accounts_short: int = 0  # of the accounts renewing that day, those falling short
    grace_ending: int = 0
    releases_due: int = 0
    tickets_to_open: int = 0

    @property
    def busy(self) -> int:
        """How much happens that day, for the chart: every event counted once."""
        return self.expiries + self.auto_renewals + self.grace_ending
