"""Which reminder is due, as plain functions (rule 1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from dns_lifecycle.lifecycle.durations import DAY
from dns_lifecycle.lifecycle.notices.keys import reminder_key
from dns_lifecycle.lifecycle.reminders import due_offset, reminder_windows

OFFSETS = [30, 7, 3, 1]
EXPIRY = datetime(2026, 12, 31, 16, 0, tzinfo=UTC)


def test_not_due_before_the_first_offset():
    """A minute before expiry - 30 days, nothing is due."""
    assert due_offset(EXPIRY, EXPIRY - 30 * DAY - timedelta(minutes=1), OFFSETS) is None


def test_due_exactly_at_the_offset_boundary():
    """At exactly expiry - N x 24 h, offset N is due."""
    for n in OFFSETS:
        assert due_offset(EXPIRY, EXPIRY - n * DAY, OFFSETS) == n


def test_catch_up_after_missed_days_gives_only_the_most_recent_offset():
    """A run two days before expiry, having missed the 30/7/3-day runs, owes only the 3-day one."""
    assert due_offset(EXPIRY, EXPIRY - 2 * DAY, OFFSETS) == 3


def test_nothing_due_at_or_after_expiry():
    """Expired instances get expiry notices, not reminders."""
    assert due_offset(EXPIRY, EXPIRY, OFFSETS) is None
    assert due_offset(EXPIRY, EXPIRY + timedelta(seconds=1), OFFSETS) is None


def test_offsets_are_measured_from_the_instant_not_the_local_date():
    """00:30 Shanghai (16:30 UTC the day before) is due 7 x 24 h before that instant."""
    expiry = datetime(2027, 1, 1, 0, 30, tzinfo=UTC) - timedelta(hours=8)
    assert due_offset(expiry, expiry - 7 * DAY - timedelta(seconds=1), OFFSETS) == 30
    assert due_offset(expiry, expiry - 7 * DAY, OFFSETS) == 7


@given(
    as_of=st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC)
    ),
    delta_minutes=st.integers(min_value=-60 * 24 * 40, max_value=60 * 24 * 40),
    offsets=st.lists(st.integers(1, 60), min_size=1, max_size=6, unique=True),
)
def test_windows_agree_with_the_per_instance_rule(as_of, delta_minutes, offsets):
    """The range windows the database scans give the same due offset as due_offset."""
    expires_at = as_of + timedelta(minutes=delta_minutes)
    in_window = [
        w.offset_days for w in reminder_windows(as_of, offsets) if w.after < expires_at <= w.until
    ]
    expected = due_offset(expires_at, as_of, offsets)
    assert in_window == ([] if expected is None else [expected])


def test_key_names_instance_expiry_and_offset_in_utc():
    """The ledger key is stable and independent of the offset the expiry was given in."""
    shanghai = EXPIRY.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Shanghai"))
    assert reminder_key("inst-1", shanghai, 7) == reminder_key("inst-1", EXPIRY, 7)
    assert reminder_key("inst-1", EXPIRY, 7) == "reminder:inst-1:20261231T160000Z:7d"
