"""What the steps deliver says the time left as of their run, on SQLite and PostgreSQL:
a catch-up reminder, a pending notice queued before notices carried as_of, the upgrade
notice's edition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlmodel import select

from dns_lifecycle.channels.email import memory as email_memory
from dns_lifecycle.channels.render import Renderer
from dns_lifecycle.channels.sms import memory as sms_memory
from dns_lifecycle.core.settings import REPO_ROOT
from dns_lifecycle.lifecycle.notices import Addressee, Reminder
from dns_lifecycle.store.notifications import insert_notices
from dns_lifecycle.store.subscriptions import upgrade
from flows.expire import expire_instances
from flows.reminders import send_renewal_reminders
from models import Notification
from tests.factories import make_account, make_catalog, make_instance

# 02:00 UTC is 10:00 in Shanghai.
AS_OF = datetime(2026, 11, 18, 2, 0, tzinfo=UTC)


def test_a_catch_up_reminder_says_the_days_left_as_of_the_run(db, flow_env):
    """An instance first seen 8 days before expiry gets the 30-day reminder, which says
    8 days in both languages and by SMS, and stores the run's as_of."""
    with db.session() as s:
        make_catalog(s)
        make_account(s, "acct-en", locale="en-US")
        make_account(s, "acct-zh", locale="zh-CN")
        for account in ("acct-en", "acct-zh"):
            make_instance(
                s, f"inst-{account}", account=account, expires_at=AS_OF + timedelta(days=8)
            )
        s.commit()
    send_renewal_reminders(as_of=AS_OF)
    with db.session() as s:
        rows = s.exec(select(Notification)).all()
    assert {(r.offset_days, r.context["as_of"]) for r in rows} == {(30, AS_OF.isoformat())}
    by_locale = {m.to.split("@")[0]: m for m in email_memory.outbox}
    assert "expires in 8 days" in by_locale["acct-en"].subject
    assert "将于8天后到期" in by_locale["acct-zh"].text
    texts = sorted(m.text for m in sms_memory.outbox)
    assert any("expires in 8 days (2026-11-26 10:00)" in t for t in texts)
    assert any("将于8天后（2026-11-26 10:00）到期" in t for t in texts)
    assert not any("30" in m.subject for m in email_memory.outbox)


def test_a_release_warning_says_today_for_a_release_later_the_same_day(db, flow_env):
    """A run at 13:00 Shanghai warns of a release at 23:59 that day as today."""
    release = datetime(2026, 1, 2, 15, 59, tzinfo=UTC)  # 23:59 in Shanghai
    as_of = datetime(2026, 1, 2, 5, 0, tzinfo=UTC)  # 13:00 in Shanghai
    with db.session() as s:
        make_catalog(s)
        make_account(s, "acct-1")
        make_instance(s, "inst-1", expires_at=release - timedelta(days=7), state="expired")
        s.commit()
    expire_instances(as_of=as_of)
    [email] = email_memory.outbox
    assert "will be released today" in email.subject
    assert "released today, 2 Jan 2026 23:59 (Asia/Shanghai)" in email.text
    assert "tomorrow" not in email.text


def test_a_pending_notice_queued_without_as_of_is_delivered(db, flow_env):
    """A reminder stored before notices carried as_of is sent, counting the days left
    from the time its row was created."""
    expiry = AS_OF + timedelta(days=8)
    created = AS_OF + timedelta(days=3)
    with db.session() as s:
        make_catalog(s)
        make_account(s, "acct-1")
        make_instance(s, "inst-1", expires_at=expiry)
        to = Addressee("acct-1", "Customer acct-1", "en-US", "Asia/Shanghai", "inst-1", "personal")
        notice = Reminder.to(
            to,
            expires_at=expiry,
            offset_days=7,
            auto_renew=False,
            amount=Decimal("118"),
            as_of=created,
        )
        rows = notice.rows(created)
        for row in rows:  # as the ledger held them before
            row["context"] = {k: v for k, v in row["context"].items() if k != "as_of"}
        insert_notices(s, rows)
        s.commit()
    send_renewal_reminders(as_of=created)
    with db.session() as s:
        states = {n.channel: (n.state, n.error) for n in s.exec(select(Notification))}
    assert states == {"email": ("sent", None), "sms": ("sent", None)}
    [email] = email_memory.outbox
    assert "expires in 5 days" in email.subject
    assert "expires in 5 days" in sms_memory.outbox[0].text


def test_a_reminder_delivered_late_says_the_days_left_when_it_is_sent(db, flow_env):
    """A 7-day reminder that could not go out until two days later says 5 days, in the
    email and the SMS, counted from the run that sends it."""
    expiry = AS_OF + timedelta(days=7)
    with db.session() as s:
        make_catalog(s)
        make_account(s, "acct-1")
        make_instance(s, "inst-1", expires_at=expiry)
        to = Addressee("acct-1", "Customer acct-1", "en-US", "Asia/Shanghai", "inst-1", "personal")
        notice = Reminder.to(
            to,
            expires_at=expiry,
            offset_days=7,
            auto_renew=False,
            amount=Decimal("118"),
            as_of=AS_OF,
        )
        insert_notices(s, notice.rows(AS_OF))  # decided, not sent (the server was down)
        s.commit()
    send_renewal_reminders(as_of=AS_OF + timedelta(days=2))
    [email], [sms] = email_memory.outbox, sms_memory.outbox
    assert "expires in 5 days" in email.subject and "expires in 5 days" in email.text
    assert "expires in 5 days" in sms.text
    assert "7 days" not in email.subject + email.text + sms.text


def test_a_reminder_decided_the_day_before_and_sent_on_the_day_says_today(db, flow_env):
    """A 1-day reminder decided at 10:00 the day before expiry and sent the next morning
    says that the instance expires today, not tomorrow."""
    expiry = AS_OF + timedelta(days=1, hours=8)  # 18:00 in Shanghai the next day
    with db.session() as s:
        make_catalog(s)
        make_account(s, "acct-1")
        make_instance(s, "inst-1", expires_at=expiry)
        to = Addressee("acct-1", "Customer acct-1", "en-US", "Asia/Shanghai", "inst-1", "personal")
        notice = Reminder.to(
            to,
            expires_at=expiry,
            offset_days=1,
            auto_renew=False,
            amount=Decimal("118"),
            as_of=AS_OF,
        )
        insert_notices(s, notice.rows(AS_OF))
        s.commit()
    send_renewal_reminders(as_of=AS_OF + timedelta(days=1))
    [email] = email_memory.outbox
    assert "expires today" in email.subject and "tomorrow" not in email.subject


def test_the_upgrade_notice_names_the_new_edition_in_its_footer(db):
    """The footer of the upgrade notice speaks of the edition the instance now has."""
    as_of = datetime(2027, 1, 26, 2, 0, tzinfo=UTC)
    with db.session() as s:
        make_catalog(s)
        make_account(s, "acct-1", balance=Decimal("500.00"))
        make_instance(s, "inst-1", expires_at=datetime(2027, 1, 30, 16, 0, tzinfo=UTC))
        s.commit()
    with db.session() as s:
        upgrade(
            s,
            instance_id="inst-1",
            edition_code="enterprise-standard",
            request_key="k",
            as_of=as_of,
            now=as_of,
            grace_days=7,
        )
        s.commit()
    with db.session() as s:
        [row] = s.exec(select(Notification).where(Notification.channel == "email")).all()
    text = Renderer(REPO_ROOT / "templates" / "emails").email("upgraded", row.context).text
    footer = text.split("\n--\n")[1]
    assert "(Enterprise Standard edition)" in footer
    assert "Personal" not in footer
