"""The daily run end to end through Prefect, on a seeded fleet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dns_lifecycle.admin.inventory import export_state
from dns_lifecycle.admin.seed import seed_fleet
from dns_lifecycle.channels.email import memory as email_memory
from dns_lifecycle.channels.sms import memory as sms_memory
from flows.daily import daily_lifecycle

AS_OF = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)


def _export(db):
    with db.session() as s:
        return export_state(s)


def test_dry_run_then_real_run_does_exactly_what_the_plan_said(db, flow_env):
    """The dry run changes and sends nothing; the real run's counts and actions per step
    equal the plan's."""
    seed_fleet(db, 400, seed=7, as_of=AS_OF)
    before = _export(db)
    plan = daily_lifecycle(as_of=AS_OF, dry_run=True)
    assert _export(db) == before
    assert email_memory.outbox == [] and sms_memory.outbox == []

    done = daily_lifecycle(as_of=AS_OF)
    assert [s.step for s in done.steps] == [s.step for s in plan.steps]
    for planned, real in zip(plan.steps, done.steps, strict=True):
        # What the plan calls planned, the real run sent.
        said = {name.replace("_planned", "_sent"): n for name, n in planned.counts.items()}
        assert said == real.counts, planned.step
        assert planned.plan == real.plan, planned.step
    counts = {s.step: s.counts for s in done.steps}
    # The seeded fleet has something for every step to do.
    assert counts["auto-renew"]["orders_created"] > 0
    assert counts["send-renewal-reminders"]["reminders_due"] > 0
    assert counts["release-instances"]["instances_released"] > 0
    assert (
        len(email_memory.outbox)
        == len(sms_memory.outbox)
        == sum(s.counts.get("email_sent", 0) for s in done.steps)
    )


def test_rerun_for_the_same_as_of_does_nothing_new(db, flow_env):
    """A second run for the same moment queues no notice, order or ticket."""
    seed_fleet(db, 300, seed=3, as_of=AS_OF)
    daily_lifecycle(as_of=AS_OF)
    state = _export(db)
    email_memory.outbox.clear()
    sms_memory.outbox.clear()
    again = daily_lifecycle(as_of=AS_OF)
    assert email_memory.outbox == [] and sms_memory.outbox == []
    assert _export(db) == state
    assert all(s.counts.get("notices_queued", 0) == 0 for s in again.steps)


def test_the_next_day_only_does_what_became_due(db, flow_env):
    """Day two sends only notices that were not due on day one."""
    seed_fleet(db, 300, seed=5, as_of=AS_OF)
    daily_lifecycle(as_of=AS_OF)
    first = {m.key for m in email_memory.outbox}
    email_memory.outbox.clear()
    sms_memory.outbox.clear()
    daily_lifecycle(as_of=AS_OF + timedelta(days=1))
    second = {m.key for m in email_memory.outbox}
    assert second and not (first & second)


def test_a_pending_notice_of_every_kind_is_delivered_by_the_next_daily_run(db, flow_env):
    """Whatever its kind (on-demand ones included: upgraded, auto_renew_changed), a
    notice left pending is sent by the next daily run, by email and by SMS."""
    from dns_lifecycle.lifecycle.notices import NOTICE_KINDS
    from dns_lifecycle.lifecycle.notices.samples import sample_context
    from dns_lifecycle.store.notifications import insert_notices
    from tests.factories import make_account, make_instance
    from tests.reliability.conftest import ledger

    far = AS_OF + timedelta(days=200)  # nothing else is due for these instances
    with db.session() as session:
        for n, kind in enumerate(NOTICE_KINDS):
            make_account(session, f"acct-{kind}", locale=("en-US", "zh-CN")[n % 2])
            make_instance(session, f"inst-{kind}", account=f"acct-{kind}", expires_at=far)
            context = sample_context(kind, ("en-US", "zh-CN")[n % 2])
            if "expires_at" in context:  # of the instance's own expiry, as queued
                context["expires_at"] = far.isoformat()
            insert_notices(
                session,
                [
                    {
                        "key": f"left-pending:{kind}:{channel}",
                        "account_id": f"acct-{kind}",
                        "instance_id": f"inst-{kind}",
                        "channel": channel,
                        "kind": kind,
                        "context": context,
                        "state": "pending",
                        "attempts": 0,
                        "created_at": AS_OF - timedelta(days=1),
                    }
                    for channel in ("email", "sms")
                ],
            )
        session.commit()

    report = daily_lifecycle(as_of=AS_OF)
    rows = ledger(db)
    assert {(r.kind, r.channel, r.state) for r in rows.values()} == {
        (kind, channel, "sent") for kind in NOTICE_KINDS for channel in ("email", "sms")
    }
    assert {m.key for m in email_memory.outbox} == {k for k in rows if k.endswith(":email")}
    last = report.steps[-1]
    assert last.step == "deliver-pending-notices"
    assert last.counts["email_sent"] >= 2  # at least upgraded and auto_renew_changed


def test_a_fresh_database_runs_every_step_with_nothing_to_do(db, flow_env):
    """On an empty database (no free cluster yet) a dry run completes, every step listed
    and none with anything to do."""
    from flows.daily import STEPS

    state = daily_lifecycle(as_of=AS_OF, dry_run=True, return_state=True)
    assert state.is_completed(), state.message
    report = state.result()
    assert [s.step for s in report.steps] == [step.name for step in STEPS]
    assert all(s.counts == {} for s in report.steps)


def test_a_step_that_fails_before_reporting_is_still_listed(db, flow_env, monkeypatch):
    """A step that fails without a report of its own still appears among the steps,
    and the run names why it failed."""
    from dns_lifecycle.core.errors import LifecycleError
    from flows import verify
    from flows.base import report_of

    def refuse(ctx, instance_ids=None):
        raise LifecycleError("no free cluster is configured")

    monkeypatch.setattr(verify, "verify_open_tickets", refuse)
    state = daily_lifecycle(as_of=AS_OF, dry_run=True, return_state=True)
    report = report_of(state)
    assert not state.is_completed()
    assert "verify-delegations" in [s.step for s in report.steps]
    assert report.failed_steps == ["verify-delegations: no free cluster is configured"]
