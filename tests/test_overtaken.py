"""Notices the ledger shows to be overtaken are never sent: not queued by a backfill,
and skipped with a reason when still pending at delivery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from dns_lifecycle.channels.email import memory as email_memory
from dns_lifecycle.channels.sms import memory as sms_memory
from dns_lifecycle.lifecycle.notices import Addressee, notice_rows
from dns_lifecycle.lifecycle.reminders import EXPIRY_STAGES, later_than, overtaken
from dns_lifecycle.store.notifications import insert_notices
from dns_lifecycle.store.subscriptions import auto_renew_batch, renew
from flows.common import open_run
from flows.delivery import deliver_pending
from flows.expire import expire_due
from flows.reminders import plan_reminders
from models import Account, Notification
from tests.factories import make_account, make_instance

EXPIRY = datetime(2026, 4, 14, 2, 0, tzinfo=UTC)
RELEASE = EXPIRY + timedelta(hours=168)


def step(settings, as_of, *steps):
    """Run plain steps at ``as_of`` in one run context; returns their reports."""
    with open_run(as_of, False, None, settings=settings) as ctx:
        return [s(ctx) for s in steps]


def ledger(db):
    with db.session() as s:
        rows = s.execute(select(Notification).order_by(Notification.id)).scalars()
        return [(n.kind, n.offset_days, n.channel, n.state, n.error) for n in rows]


def sent_keys():
    return sorted(m.key for m in email_memory.outbox) + sorted(m.key for m in sms_memory.outbox)


# --- the rule as a pure function -----------------------------------------------------------


def check(kind, offset, ledger_rows, *, expires_at=EXPIRY, as_of=EXPIRY - timedelta(days=40)):
    return overtaken(
        kind,
        offset,
        EXPIRY,
        ledger=ledger_rows,
        expires_at=expires_at,
        as_of=as_of,
        release_at=RELEASE,
    )


def test_a_larger_reminder_offset_is_overtaken_by_a_smaller_one():
    """The 30-day reminder is stale once the 3-day one is in the ledger, not the reverse."""
    assert "3-day reminder" in check("reminder", 30, [("reminder", 3)])
    assert check("reminder", 3, [("reminder", 30)]) is None


def test_each_later_stage_overtakes_the_earlier_ones():
    """Expiry notice over reminders, release warning over the expiry notice, release over all."""
    assert "expired notice" in check("reminder", 1, [("expired", None)])
    assert "release_warning notice" in check("expired", None, [("release_warning", None)])
    assert "released notice" in check("release_warning", None, [("released", None)])
    assert check("released", None, [("reminder", 1), ("release_warning", None)]) is None


def test_a_reminder_after_the_expiry_or_a_warning_after_the_release_time_is_stale():
    """Time overtakes too: as of the expiry a reminder is stale, as of release a warning."""
    assert "expired at" in check("reminder", 1, [], as_of=EXPIRY)
    assert check("reminder", 1, [], as_of=EXPIRY - timedelta(seconds=1)) is None
    assert "has passed" in check("release_warning", None, [], as_of=RELEASE)


def test_an_expiry_notice_after_the_release_time_is_stale():
    """The expiry notice asks to renew before the release: as of the release it is stale."""
    assert "has passed" in check("expired", None, [], as_of=RELEASE)
    assert check("expired", None, [], as_of=RELEASE - timedelta(seconds=1)) is None


def test_a_notice_about_an_expiry_the_instance_no_longer_has_is_stale():
    """Renewed since it was queued: the notice names an expiry that is no longer true."""
    assert "expiry moved" in check("reminder", 7, [], expires_at=EXPIRY + timedelta(days=30))


def test_notices_outside_an_expirys_life_are_never_overtaken():
    """Order, renewal and switch notices are not part of the stages."""
    assert later_than("renewed", None) is None
    assert check("renewed", None, [("released", None)]) is None


stages = st.tuples(st.sampled_from(EXPIRY_STAGES), st.sampled_from([30, 7, 3, 1])).map(
    lambda t: (t[0], t[1] if t[0] == "reminder" else None)
)


@given(notice=stages, others=st.lists(stages, max_size=6))
def test_the_sql_filter_and_the_function_agree(notice, others):
    """later_than (what queueing filters on) says overtaken exactly when overtaken does."""
    kind, offset = notice
    rule = later_than(kind, offset)
    by_filter = any(
        k in rule.kinds
        or (
            k == "reminder"
            and rule.reminder_offset_below is not None
            and o < rule.reminder_offset_below
        )
        for k, o in others
    )
    assert by_filter == (check(kind, offset, others) is not None)


# --- queueing: a backfill does not queue what the ledger has overtaken ---------------------


def test_a_backfill_does_not_send_a_30_day_reminder_after_the_3_day_one(db, settings):
    """Run on 11 Apr (3-day reminder sent), then a backfill for 1 Apr: nothing is queued
    or sent for the 30-day offset."""
    with db.session() as s:
        make_instance(s, "inst-1", expires_at=EXPIRY)
        s.commit()
    step(settings, EXPIRY - timedelta(days=3), plan_reminders, deliver_pending)
    assert [(k, o, st_) for k, o, _, st_, _ in ledger(db)] == [
        ("reminder", 3, "sent"),
        ("reminder", 3, "sent"),
    ]
    email_memory.outbox.clear()
    sms_memory.outbox.clear()
    plan, _ = step(settings, EXPIRY - timedelta(days=13), plan_reminders, deliver_pending)
    assert plan.counts.get("reminders_due", 0) == 0
    assert sent_keys() == [] and len(ledger(db)) == 2


# --- delivery: pending rows overtaken since they were queued are skipped ------------------


def test_a_pending_30_day_reminder_is_skipped_once_the_7_day_one_is_queued(db, settings):
    """A 30-day reminder that could not be delivered is not sent after the 7-day one: it
    is marked skipped with the reason, and the 7-day one goes out."""
    with db.session() as s:
        make_instance(s, "inst-1", expires_at=EXPIRY)
        s.commit()
    step(settings, EXPIRY - timedelta(days=20), plan_reminders)  # queued, not delivered
    _, report = step(settings, EXPIRY - timedelta(days=5), plan_reminders, deliver_pending)
    rows = ledger(db)
    assert [(k, o, st_) for k, o, _, st_, _ in rows] == [
        ("reminder", 30, "skipped"),
        ("reminder", 30, "skipped"),
        ("reminder", 7, "sent"),
        ("reminder", 7, "sent"),
    ]
    assert "the 7-day reminder" in rows[0][4]
    assert report.counts["notices_skipped_overtaken"] == 2
    assert all(":7d:" in key for key in sent_keys())


def test_a_pending_reminder_is_skipped_after_a_renewal(db, settings):
    """Renewed by hand after the reminder was queued: the reminder names a stale expiry
    and is skipped; the renewal notice is sent."""
    with db.session() as s:
        make_instance(s, "inst-1", expires_at=EXPIRY)
        s.commit()
    as_of = EXPIRY - timedelta(days=5)
    step(settings, as_of, plan_reminders)
    with db.session() as s:
        renew(
            s,
            instance_id="inst-1",
            periods=1,
            request_key="k",
            as_of=as_of,
            now=as_of,
            grace_days=7,
        )
        s.commit()
    step(settings, as_of, deliver_pending)
    states = {(k, st_) for k, _, _, st_, _ in ledger(db)}
    assert states == {("reminder", "skipped"), ("renewed", "sent")}
    assert all(key.startswith("renewed:") for key in sent_keys())


def test_a_pending_release_warning_is_skipped_once_the_release_is_in_the_ledger(db, settings):
    """A release warning still pending when the release notice exists is not sent."""
    with db.session() as s:
        make_instance(s, "inst-1", expires_at=EXPIRY, state="expired")
        s.commit()
    as_of = RELEASE - timedelta(hours=12)
    step(settings, as_of, expire_due)  # queues the warning
    with db.session() as s:
        to = Addressee("acct-1", "A", "en-US", "Asia/Shanghai", "inst-1", "personal")
        released = notice_rows("released", to, "released:inst-1:x", RELEASE, {}, ref_at=EXPIRY)
        insert_notices(s, [{**r, "state": "sent"} for r in released])
        s.commit()
    step(settings, RELEASE, deliver_pending)
    assert {(k, st_) for k, _, _, st_, _ in ledger(db)} == {
        ("release_warning", "skipped"),
        ("released", "sent"),
    }
    assert sent_keys() == []


def test_a_backfilled_release_warning_is_not_queued_after_the_release(db, settings):
    """The warning query leaves out an expiry whose release notice is in the ledger."""
    with db.session() as s:
        make_instance(s, "inst-1", expires_at=EXPIRY, state="expired")
        to = Addressee("acct-1", "A", "en-US", "Asia/Shanghai", "inst-1", "personal")
        released = notice_rows("released", to, "released:inst-1:x", RELEASE, {}, ref_at=EXPIRY)
        insert_notices(s, [{**r, "state": "sent"} for r in released])
        s.commit()
    (report,) = step(settings, RELEASE - timedelta(hours=12), expire_due)
    assert report.counts.get("release_warnings", 0) == 0
    assert {k for k, *_ in ledger(db)} == {"released"}


def test_an_instance_found_expired_after_its_grace_period_gets_no_expiry_notice(db, settings):
    """Expired and released in one run: only the release is told, never "renew before"
    a date already past."""
    with db.session() as s:
        make_instance(s, "inst-1", expires_at=EXPIRY)
        s.commit()
    (report,) = step(settings, RELEASE, expire_due)
    assert report.counts.get("instances_expired") == 1
    assert ledger(db) == []


def test_a_pending_expiry_notice_is_skipped_once_the_release_time_has_come(db, settings):
    """Queued in its grace period but still pending at the release: skipped, not sent."""
    with db.session() as s:
        make_instance(s, "inst-1", expires_at=EXPIRY)
        s.commit()
    step(settings, EXPIRY + timedelta(hours=1), expire_due)
    assert {st_ for *_, st_, _ in ledger(db)} == {"pending"}
    step(settings, RELEASE, deliver_pending)
    assert {st_ for *_, st_, _ in ledger(db)} == {"skipped"}
    assert sent_keys() == []


# --- "renewal failed" notices ---------------------------------------------------------------


def _failed_auto_renewal(db, as_of):
    """An auto-renewing instance whose balance does not cover its order, failed at
    ``as_of``: its "renewal failed" notice is queued, not sent."""
    with db.session() as s:
        make_account(s, "acct-1", balance=Decimal("1.00"))
        make_instance(s, "inst-1", expires_at=EXPIRY, auto_renew=True)
        s.commit()
    _auto_renew(db, as_of)


def _auto_renew(db, as_of):
    with db.session() as s:
        auto_renew_batch(s, ["inst-1"], as_of=as_of, now=as_of, lead_days=7)
        s.commit()


def test_a_pending_renewal_failure_is_skipped_once_the_instance_has_expired(db, settings):
    """A failure notice still pending at the expiry asks to act before a moment gone:
    skipped; the expiry notice tells instead."""
    _failed_auto_renewal(db, EXPIRY - timedelta(days=2))
    step(settings, EXPIRY + timedelta(hours=1), expire_due, deliver_pending)
    assert {(k, st_) for k, _, _, st_, _ in ledger(db)} == {
        ("renewal_failed", "skipped"),
        ("order_created", "sent"),
        ("expired", "sent"),
    }
    assert not [k for k in sent_keys() if k.startswith("renewal_failed:")]


def test_a_pending_renewal_failure_is_skipped_once_a_retry_has_renewed(db, settings):
    """Paid by a later retry after a top-up: the failure notice is not sent after the
    renewal notice."""
    as_of = EXPIRY - timedelta(days=3)
    _failed_auto_renewal(db, as_of)
    with db.session() as s:
        s.get(Account, "acct-1").balance = Decimal("100.00")
        s.commit()
    _auto_renew(db, as_of + timedelta(hours=1))
    step(settings, as_of + timedelta(hours=1), deliver_pending)
    kinds = {(k, st_) for k, _, _, st_, _ in ledger(db)}
    assert ("renewal_failed", "skipped") in kinds and ("renewed", "sent") in kinds
    assert not [k for k in sent_keys() if k.startswith("renewal_failed:")]


def test_a_pending_renewal_failure_is_skipped_for_the_next_days_one(db, settings):
    """Told again the next day while the first day's notice was still pending: only the
    latest goes out."""
    _failed_auto_renewal(db, EXPIRY - timedelta(days=3))
    _auto_renew(db, EXPIRY - timedelta(days=2))
    step(settings, EXPIRY - timedelta(days=2), deliver_pending)
    failures = [m.key for m in email_memory.outbox if m.key.startswith("renewal_failed:")]
    assert len(failures) == 1 and failures[0].endswith(
        f"{(EXPIRY - timedelta(days=2)).astimezone(ZoneInfo('Asia/Shanghai')):%Y%m%d}:email"
    )
