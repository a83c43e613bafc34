"""Expiry, grace and release decisions (rules 5 and 6), as plain functions.

What release does about each domain's delegation (rule 7) is in ``nameservers``.

"7 days after expiry" is ``expires_at + 168 h``: nothing is released a minute earlier.
"""

from __future__ import annotations

from datetime import datetime

from dns_lifecycle.lifecycle.durations import DAY

# The state an instance expires from, and the state it waits for release in.
ACTIVE = "active"
EXPIRED = "expired"


def is_expired(expires_at: datetime, as_of: datetime) -> bool:
    """An instance is expired from its expiry instant on (rule 5)."""
    return as_of >= expires_at


def expired_until(as_of: datetime) -> datetime:
    """Instances whose expiry is at or before this moment are expired: the rule of
    :func:`is_expired`, as the bound the database scans."""
    return as_of


def release_at(expires_at: datetime, grace_days: int) -> datetime:
    return expires_at + grace_days * DAY


def is_release_due(expires_at: datetime, as_of: datetime, grace_days: int) -> bool:
    return as_of >= release_at(expires_at, grace_days)


def is_release_warning_due(expires_at: datetime, as_of: datetime, grace_days: int) -> bool:
    """The last warning goes out during the 24 h before release."""
    at = release_at(expires_at, grace_days)
    return at - DAY <= as_of < at


def release_due_until(as_of: datetime, grace_days: int) -> datetime:
    """Instances that expired at or before this moment are due for release."""
    return as_of - grace_days * DAY


def release_warning_window(as_of: datetime, grace_days: int) -> tuple[datetime, datetime]:
    """Expiries in ``(after, until]`` are in the 24 h before their release: the rule of
    :func:`is_release_warning_due`, turned into a range the database can scan."""
    until = release_due_until(as_of, grace_days) + DAY
    return until - DAY, until
