"""Which renewal reminder is due, as of a moment (rule 1 of lifecycle.md).

"N days before expiry" is due once ``as_of >= expires_at - N x 24 h``. Of the offsets
reached, only the most recent (smallest) one is due: a run that missed some days
catches up with one reminder, not one per missed offset. Every (instance, expiry,
offset, channel) is reminded at most once (``notices.keys.reminder_key``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from dns_lifecycle.lifecycle.durations import DAY

# Only an active instance is reminded; an expired one gets the expiry notices.
REMINDED_STATE = "active"


def due_offset(expires_at: datetime, as_of: datetime, offsets: list[int]) -> int | None:
    """The offset (in days) whose reminder is due for this expiry, or None."""
    if as_of >= expires_at:
        return None  # expired: the expiry notices take over
    reached = [n for n in offsets if as_of >= expires_at - n * DAY]
    return min(reached) if reached else None


def reminder_due(
    state: str,
    expires_at: datetime,
    as_of: datetime,
    offsets: list[int],
    reminded: Collection[int] = (),
) -> int | None:
    """The offset to remind an instance of now, or None: it is active, an offset is
    due (:func:`due_offset`), and that offset was not yet reminded for this expiry
    (``reminded`` holds the offsets already in the ledger for it)."""
    if state != REMINDED_STATE:
        return None
    offset = due_offset(expires_at, as_of, offsets)
    return None if offset is None or offset in reminded else offset


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
