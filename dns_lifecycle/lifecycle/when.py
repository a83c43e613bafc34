"""How far away a moment is, as a person reads it: today, tomorrow, in N days.

Notices count days the way their reader does: on the calendar of the account's time
zone. The day of the moment and the day of the run's ``as_of`` are both taken as local
dates there, and their difference is the number of days: a release at 23:59 told at
13:00 the same local day is "today", one at 00:30 told the evening before is
"tomorrow", whatever the hours between them or a daylight-saving change in between.
Every notice that speaks of relative days asks this one function.

Pure: no clock, no database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Literal

from dns_lifecycle.lifecycle.calendar import zone_of

Word = Literal["past", "today", "tomorrow", "later"]


@dataclass(frozen=True)
class DaysAway:
    """A moment seen from ``as_of`` on a local calendar."""

    days: int  # local date of the moment minus local date of as_of
    local: datetime  # the moment, in the zone
    on: date  # its local date

    @property
    def word(self) -> Word:
        """ "past" (an earlier day), "today", "tomorrow" or "later" (two days or more)."""
        if self.days < 0:
            return "past"
        if self.days == 0:
            return "today"
        if self.days == 1:
            return "tomorrow"
        return "later"


def days_away(moment: datetime, as_of: datetime, zone: str | tzinfo) -> DaysAway:
    """How many local calendar days of ``zone`` lie between ``as_of`` and ``moment``."""
    for value, name in ((moment, "moment"), (as_of, "as_of")):
        if value.tzinfo is None:
            raise ValueError(f"{name} {value.isoformat()} has no time zone; give an aware time")
    tz = zone_of(zone)
    local = moment.astimezone(tz)
    days = (local.date() - as_of.astimezone(tz).date()).days
    return DaysAway(days=days, local=local, on=local.date())
