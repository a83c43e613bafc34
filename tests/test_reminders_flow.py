"""Renewal reminders end to end through Prefect (rule 1, rule 8)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlmodel import select

from dns_lifecycle.channels.email import memory as email_memory
from dns_lifecycle.channels.sms import memory as sms_memory
from flows.common import open_run
from flows.delivery import deliver_pending
from flows.reminders import plan_reminders, send_renewal_reminders
from models import Account, Notification
from tests.factories import make_account, make_catalog, make_instance

AS_OF = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def _fleet(db):
    with db.session() as s:
        make_catalog(s)
        make_account(s, "acct-en", locale="en-US", timezone="Asia/Shanghai")
        make_account(s, "acct-zh", locale="zh-CN", timezone="Asia/Shanghai")
        # due at 30 days, manual renewal
        make_instance(s, "inst-30", account="acct-en", expires_at=AS_OF + timedelta(days=20))
        # due at 7 days, auto-renewing, Chinese
        make_instance(
            s, "inst-7", account="acct-zh", expires_at=AS_OF + timedelta(days=5), auto_renew=True
        )
        # not due yet
        make_instance(s, "inst-far", account="acct-en", expires_at=AS_OF + timedelta(days=45))
        # expired: no reminder
        make_instance(
            s, "inst-gone", account="acct-en", expires_at=AS_OF - timedelta(days=1), state="expired"
        )
        s.commit()


def _ledger(db):
    with db.session() as s:
        return sorted(
            (n.instance_id, n.offset_days, n.channel, n.state) for n in s.exec(select(Notification))
        )


def test_a_run_sends_the_due_reminders_by_email_and_sms(db, flow_env):
    """Each due instance gets one email and one SMS at its most recent offset."""
    _fleet(db)
    report = send_renewal_reminders(as_of=AS_OF)
    assert _ledger(db) == [
        ("inst-30", 30, "email", "sent"),
        ("inst-30", 30, "sms", "sent"),
        ("inst-7", 7, "email", "sent"),
        ("inst-7", 7, "sms", "sent"),
    ]
    assert report.counts["email_sent"] == 2 and report.counts["sms_sent"] == 2
    with db.session() as s:
        addresses = {a.email for a in s.exec(select(Account))}
        phones = {a.phone for a in s.exec(select(Account))}
    assert sorted(m.to for m in email_memory.outbox) == sorted(addresses)
    assert {m.phone for m in sms_memory.outbox} <= phones and len(sms_memory.outbox) == 2


def test_a_rerun_of_the_same_as_of_sends_nothing(db, flow_env):
    """The ledger keys make a rerun a no-op."""
    _fleet(db)
    send_renewal_reminders(as_of=AS_OF)
    email_memory.outbox.clear()
    sms_memory.outbox.clear()
    report = send_renewal_reminders(as_of=AS_OF)
    assert email_memory.outbox == [] and sms_memory.outbox == []
    assert report.counts.get("notices_queued", 0) == 0


def test_the_next_day_sends_only_what_became_due(db, flow_env):
    """Two days on, inst-7 crossed its 3-day offset; inst-30 has nothing new."""
    _fleet(db)
    send_renewal_reminders(as_of=AS_OF)
    email_memory.outbox.clear()
    sms_memory.outbox.clear()
    send_renewal_reminders(as_of=AS_OF + timedelta(days=2))
    assert sorted(m.key for m in email_memory.outbox) == [
        f"reminder:inst-7:{(AS_OF + timedelta(days=5)):%Y%m%dT%H%M%SZ}:3d:email"
    ]


def test_a_dry_run_plans_and_changes_nothing(db, flow_env):
    """A dry run lists the due reminders and writes no ledger row."""
    _fleet(db)
    report = send_renewal_reminders(as_of=AS_OF, dry_run=True)
    assert sorted(p["instance"] for p in report.plan) == ["inst-30", "inst-7"]
    assert _ledger(db) == [] and email_memory.outbox == []


def test_a_dry_run_counts_its_notices_as_planned_not_sent(db, flow_env):
    """A dry run's report says email_planned and sms_planned: it sends nothing."""
    _fleet(db)
    report = send_renewal_reminders(as_of=AS_OF, dry_run=True)
    assert report.counts["email_planned"] == report.counts["sms_planned"] == 2
    assert not [name for name in report.counts if name.endswith("_sent")]


def test_an_auto_renewing_instance_whose_balance_falls_short_is_told_to_top_up(db, settings):
    """Auto-renewal on but the balance short: the reminder names the shortfall and asks
    to top up or renew by hand, instead of saying that nothing needs doing."""
    with db.session() as s:
        make_catalog(s)
        make_account(s, "acct-poor", balance=Decimal("2.50"))
        make_account(s, "acct-rich")
        for account in ("acct-poor", "acct-rich"):
            make_instance(
                s,
                f"inst-{account}",
                account=account,
                expires_at=AS_OF + timedelta(days=5),
                auto_renew=True,
            )
        s.commit()
    with open_run(AS_OF, False, None, settings=settings) as ctx:
        plan_reminders(ctx)
        deliver_pending(ctx)
    by_account = {m.to.split("@")[0]: m for m in email_memory.outbox}
    poor, rich = by_account["acct-poor"], by_account["acct-rich"]
    assert "top up ¥7.40" in poor.subject
    assert "balance, ¥2.50, does not cover the next period, ¥9.90" in poor.text
    assert "renew it by hand" in poor.text
    assert "do not need to renew" not in poor.text and "do not need to" not in poor.html
    assert "renewed automatically" in rich.subject and "do not need to renew" in rich.text


def test_the_sms_of_a_short_balance_reminder_names_the_shortfall(db, settings):
    """Auto-renewal on but the balance short: the SMS goes out with the AUTO_SHORT
    template, its balance and top-up as variables, and asks to top up or renew by hand."""
    with db.session() as s:
        make_catalog(s)
        make_account(s, "acct-poor", balance=Decimal("2.50"))
        make_instance(
            s,
            "inst-poor",
            account="acct-poor",
            expires_at=AS_OF + timedelta(days=5),
            auto_renew=True,
        )
        s.commit()
    with open_run(AS_OF, False, None, settings=settings) as ctx:
        plan_reminders(ctx)
        deliver_pending(ctx)
    [sms] = sms_memory.outbox
    assert sms.template_code.endswith("REMINDER_AUTO_SHORT_EN")
    assert sms.params["balance"] == "¥2.50" and sms.params["top_up"] == "¥7.40"
    assert "top up at least ¥7.40" in sms.text and "renew by hand" in sms.text
    assert "renews automatically" not in sms.text
