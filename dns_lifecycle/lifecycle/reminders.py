"""Which renewal reminder is due, as of a moment (rule 1 of lifecycle.md).

"N days before expiry" is due once ``as_of >= expires_at - N x 24 h``. Of the offsets
reached, only the most recent (smallest) one is due: a run that missed some days
catches up with one reminder, not one per missed offset. Every (instance, expiry,
offset, channel) is reminded at most once; the ledger key below is that identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from dns_lifecycle.lifecycle.notices import stamp

DAY = timedelta(hours=24)


def due_offset(expires_at: datetime, as_of: datetime, offsets: list[int]) -> int | None:
    """The offset (in days) whose reminder is due for this expiry, or None."""
    if as_of >= expires_at:
        return None  # expired: the expiry notices take over
    reached = [n for n in offsets if as_of >= expires_at - n * DAY]
    return min(reached) if reached else None


@dataclass(frozen=True)
class Window:
    """Expiries in ``(after, until]`` have ``offset_days`` as their due offset."""

    offset_days: int
    after: datetime
    until: datetime


def reminder_windows(as_of: datetime, offsets: list[int]) -> list[Window]:
    """The expiry ranges for which each offset is the due one, nearest first.

    The same rule as :func:`due_offset`, turned around so the database can answer it
    with one range scan per offset instead of a look at every instance.
    """
    windows = []
    previous = 0
    for n in sorted(offsets):
        windows.append(Window(n, as_of + previous * DAY, as_of + n * DAY))
        previous = n
    return windows


def reminder_key(instance_id: str, expires_at: datetime, offset_days: int) -> str:
    """Identity of one reminder; the channel is appended by the ledger."""
    return f"reminder:{instance_id}:{stamp(expires_at)}:{offset_days}d"
