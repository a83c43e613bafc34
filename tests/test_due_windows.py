"""The windows the daily steps scan agree with the per-instance rules they come from:
expiry, auto-renewal, the last warning and renewal reminders (rules 1, 2 and 5)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from sqlalchemy import delete

from dns_lifecycle.core.db import Database
from dns_lifecycle.core.settings import Settings
from dns_lifecycle.lifecycle.durations import DAY
from dns_lifecycle.lifecycle.expiry import (
    expired_until,
    is_expired,
    is_release_warning_due,
)
from dns_lifecycle.lifecycle.notices import Addressee, ReleaseWarning, Reminder
from dns_lifecycle.lifecycle.reminders import reminder_due, reminder_windows
from dns_lifecycle.lifecycle.renewal import auto_renewal_window, is_auto_renewal_due
from dns_lifecycle.store.auto_renewal import auto_renewal_due
from dns_lifecycle.store.expiry import past_expiry, release_warning_due
from dns_lifecycle.store.notifications import insert_notices
from dns_lifecycle.store.reminders import reminders_due
from models import Instance, Notification
from tests.factories import make_instance

AS_OF = datetime(2027, 3, 1, 4, 0, tzinfo=UTC)
OFFSETS = [30, 7, 3, 1]
GRACE = 7
LEAD = 7
moments = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC)
)


# ------------------------------------------------------------------ plain rules


def test_an_instance_is_expired_from_its_expiry_instant_on():
    """Expired at the instant itself, not a second before."""
    assert not is_expired(AS_OF, AS_OF - timedelta(seconds=1))
    assert is_expired(AS_OF, AS_OF)


@given(as_of=moments, minutes=st.integers(-60 * 24 * 3, 60 * 24 * 3))
def test_the_expiry_bound_agrees_with_the_per_instance_rule(as_of, minutes):
    """An expiry at or before the bound the step scans is exactly an expired one."""
    expires_at = as_of + timedelta(minutes=minutes)
    assert (expires_at <= expired_until(as_of)) == is_expired(expires_at, as_of)


@given(as_of=moments, minutes=st.integers(-60 * 24 * 12, 60 * 24 * 12), lead=st.integers(1, 30))
def test_the_auto_renewal_window_agrees_with_the_per_instance_rule(as_of, minutes, lead):
    """The range the auto-renewal step scans holds exactly the expiries due for it."""
    expires_at = as_of + timedelta(minutes=minutes)
    after, until = auto_renewal_window(as_of, lead)
    assert (after < expires_at <= until) == is_auto_renewal_due(expires_at, as_of, lead)


def test_only_an_active_instance_is_reminded():
    """An expired or released instance gets no reminder, whatever its expiry."""
    expiry = AS_OF + 2 * DAY
    assert reminder_due("active", expiry, AS_OF, OFFSETS) == 3
    assert reminder_due("expired", expiry, AS_OF, OFFSETS) is None
    assert reminder_due("released", expiry, AS_OF, OFFSETS) is None


def test_an_offset_already_reminded_is_not_due_again():
    """The 3-day reminder, once in the ledger for this expiry, is not due again; the
    7-day one in the ledger does not stop it."""
    expiry = AS_OF + 2 * DAY
    assert reminder_due("active", expiry, AS_OF, OFFSETS, ledger=[("reminder", 3)]) is None
    assert reminder_due("active", expiry, AS_OF, OFFSETS, ledger=[("reminder", 7)]) == 3


def test_a_reminder_a_smaller_offset_overtook_is_not_due():
    """A backfill finds the 1-day reminder already sent: the 3-day one is not due."""
    expiry = AS_OF + timedelta(days=2)
    assert reminder_due("active", expiry, AS_OF, OFFSETS, ledger=[("reminder", 1)]) is None


# ------------------------------------------------------------------ the SQL agrees

instances = st.lists(
    st.tuples(
        st.sampled_from(["active", "expired", "released"]),
        # Expiry, minutes from AS_OF; often in the day before release.
        st.one_of(
            st.integers(-60 * 24 * 12, 60 * 24 * 40), st.integers(-60 * 24 * 7, -60 * 24 * 6)
        ),
        st.booleans(),  # auto-renewal
        st.sets(st.sampled_from(OFFSETS)),  # reminders in the ledger for this expiry
        st.sets(st.sampled_from(OFFSETS)),  # ... and for an earlier expiry
        st.booleans(),  # last warning in the ledger for this expiry
    ),
    max_size=8,
)


def _addressee(instance_id: str) -> Addressee:
    return Addressee("acct-1", "A", "en-US", "UTC", instance_id, "personal")


def _fill(db: Database, fleet) -> dict[str, tuple]:
    """Write the fleet and its ledger; returns each instance's row by id."""
    by_id = {}
    with db.session() as session:
        session.execute(delete(Notification))
        session.execute(delete(Instance))
        notices: list[dict] = []
        for n, (state, minutes, auto, reminded, reminded_before, warned) in enumerate(fleet):
            instance_id = f"inst-{n}"
            expires_at = AS_OF + timedelta(minutes=minutes)
            make_instance(
                session,
                instance_id,
                expires_at=expires_at,
                state=state,
                auto_renew=auto,
                domains=[],
            )
            for offset, ref in [(o, expires_at) for o in reminded] + [
                (o, expires_at - 30 * DAY) for o in reminded_before
            ]:
                notices += Reminder.to(
                    _addressee(instance_id),
                    expires_at=ref,
                    offset_days=offset,
                    auto_renew=auto,
                    amount=Decimal("1"),
                    as_of=AS_OF,
                ).rows(AS_OF)
            if warned:
                notices += ReleaseWarning.to(
                    _addressee(instance_id),
                    expires_at=expires_at,
                    release_at=expires_at,
                    as_of=AS_OF,
                ).rows(AS_OF)
            by_id[instance_id] = (state, expires_at, auto, reminded, warned)
        insert_notices(session, notices)
        session.commit()
    return by_id


def _ids(db: Database, query) -> set[str]:
    with db.session() as session:
        return {r.id for r in session.execute(query())}


@hyp_settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(fleet=instances)
def test_the_store_scans_select_what_the_rules_decide(_sqlite_template, tmp_path_factory, fleet):
    """Property: for any fleet and ledger, each step's scan selects exactly the
    instances its per-instance rule says are due, and no other."""
    folder = tmp_path_factory.mktemp("windows")
    shutil.copy(_sqlite_template, folder / "w.db")
    db = Database(Settings(database_url=f"sqlite:///{folder / 'w.db'}"))
    try:
        fleet_by_id = _fill(db, fleet)
        reminded = set()
        for window in reminder_windows(AS_OF, OFFSETS):
            reminded |= {(i, window.offset_days) for i in _ids(db, reminders_due(window))}
        assert reminded == {
            (i, offset)
            for i, (state, expires_at, _, done, warned) in fleet_by_id.items()
            if (
                offset := reminder_due(
                    state,
                    expires_at,
                    AS_OF,
                    OFFSETS,
                    [("reminder", o) for o in done] + [("release_warning", None)] * warned,
                )
            )
            is not None
        }
        assert _ids(db, past_expiry(AS_OF)) == {
            i
            for i, (state, expires_at, *_) in fleet_by_id.items()
            if state == "active" and is_expired(expires_at, AS_OF)
        }
        assert _ids(db, auto_renewal_due(AS_OF, LEAD)) == {
            i
            for i, (state, expires_at, auto, *_) in fleet_by_id.items()
            if state == "active" and auto and is_auto_renewal_due(expires_at, AS_OF, LEAD)
        }
        assert _ids(db, release_warning_due(AS_OF, GRACE)) == {
            i
            for i, (state, expires_at, _, _, warned) in fleet_by_id.items()
            if state == "expired"
            and not warned
            and is_release_warning_due(expires_at, AS_OF, GRACE)
        }
    finally:
        db.dispose()
        shutil.rmtree(folder, ignore_errors=True)
