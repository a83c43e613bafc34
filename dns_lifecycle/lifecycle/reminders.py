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
    ledger: Collection[tuple[str, int | None]] = (),
) -> int | None:
    """The offset to remind an instance of now, or None: it is active, an offset is
    due (:func:`due_offset`), and the ledger holds for this expiry neither that
    reminder nor a notice that overtakes it (:func:`later_than`: a smaller offset, the
    expiry notice, the warning, the release; a backfill after a later run finds them).
    ``ledger`` is the (kind, offset_days) of the notices already queued for this expiry.
    """
    if state != REMINDED_STATE:
        return None
    offset = due_offset(expires_at, as_of, offsets)
    if offset is None:
        return None
    mine = _rank("reminder", offset)
    if any((stage := _stage(k, o)) is not None and stage >= mine for k, o in ledger):
        return None
    return offset


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


# --- notices the ledger shows to be overtaken ----------------------------------------------

# The notices about one expiry of an instance, in the order its life brings them. Within
# reminders, a smaller offset comes later.
EXPIRY_STAGES = ("reminder", "expired", "release_warning", "released")


@dataclass(frozen=True)
class Later:
    """The ledger notices that overtake a given one (same instance and expiry): any of
    ``kinds``, or a reminder with an offset below ``reminder_offset_below``."""

    kinds: tuple[str, ...]
    reminder_offset_below: int | None


def _stage(kind: str, offset_days: int | None) -> tuple[int, int] | None:
    if kind not in EXPIRY_STAGES:
        return None
    return _rank(kind, offset_days)


def _rank(kind: str, offset_days: int | None) -> tuple[int, int]:
    """Where a notice of ``kind``, one of EXPIRY_STAGES, comes in an expiry's life."""
    return EXPIRY_STAGES.index(kind), -(offset_days or 0) if kind == "reminder" else 0


def later_than(kind: str, offset_days: int | None) -> Later | None:
    """What overtakes a notice of ``kind`` (None for notices outside an expiry's life).

    The same rule as :func:`overtaken`, as a filter the database can apply when notices
    are queued: a 30-day reminder is overtaken by a 7-day one for the same expiry, any
    reminder by the expiry notice, the expiry notice by the release warning, and all of
    them by the release.
    """
    stage = _stage(kind, offset_days)
    if stage is None:
        return None
    later_kinds = EXPIRY_STAGES[stage[0] + 1 :]
    return Later(later_kinds, offset_days if kind == "reminder" else None)


def overtaken(
    kind: str,
    offset_days: int | None,
    ref_at: datetime | None,
    *,
    ledger: list[tuple[str, int | None]],
    expires_at: datetime,
    as_of: datetime,
    release_at: datetime,
) -> str | None:
    """Why a notice about the expiry ``ref_at`` must no longer be sent, or None.

    ``ledger`` holds the (kind, offset) of the other notices for the same instance and
    expiry; ``expires_at`` is the instance's expiry now and ``release_at`` the end of its
    grace period. A notice is overtaken when the ledger holds a later one (see
    :func:`later_than`), when the instance's expiry has moved (renewed since), when a
    reminder's expiry has come, or when the release time has come for an expiry notice
    or a release warning (both ask to renew before it).
    """
    rule = later_than(kind, offset_days)
    if rule is None or ref_at is None:
        return None
    if expires_at != ref_at:
        return f"the instance's expiry moved from {ref_at.isoformat()} to {expires_at.isoformat()}"
    mine = _stage(kind, offset_days)
    later = sorted(
        (stage, k, o)
        for k, o in ledger
        if (stage := _stage(k, o)) is not None and mine is not None and stage > mine
    )
    if later:
        _, k, o = later[-1]
        what = f"the {o}-day reminder" if k == "reminder" else f"the {k} notice"
        return f"overtaken: the ledger already holds {what} for this expiry"
    if kind == "reminder" and as_of >= ref_at:
        return f"the instance expired at {ref_at.isoformat()}, before this reminder went out"
    if kind in ("expired", "release_warning") and as_of >= release_at:
        return f"the release time {release_at.isoformat()} has passed"
    return None


def failure_overtaken(
    *,
    told_expiry: datetime,
    expires_at: datetime,
    as_of: datetime,
    day: str,
    latest_day: str,
) -> str | None:
    """Why a "renewal failed" notice must no longer be sent, or None. It asks to top up
    or renew before ``told_expiry`` (the expiry when it was decided): not once the
    instance's expiry has moved (``expires_at``: renewed since, and told so), nor once
    that expiry has come by ``as_of`` (the expiry notice tells instead), nor when the
    account was told of the same order's failure on a later day (``latest_day``, and
    ``day`` this one's, as the ledger keys spell them)."""
    if expires_at != told_expiry:
        return (
            f"the instance's expiry moved from {told_expiry.isoformat()} to "
            f"{expires_at.isoformat()}: renewed since"
        )
    if as_of >= told_expiry:
        return f"the instance expired at {told_expiry.isoformat()}, before this notice went out"
    if latest_day > day:
        return f"overtaken: the ledger already holds this order's failure notice of {latest_day}"
    return None
