"""Step: send renewal reminders (rule 1) by email and SMS."""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import and_, exists, select

from dns_lifecycle.lifecycle.notices import Addressee, iso, money, notice_rows
from dns_lifecycle.lifecycle.pricing import period_price
from dns_lifecycle.lifecycle.reminders import Window, reminder_key, reminder_windows
from dns_lifecycle.store.notifications import insert_notices, overtaken_in_ledger
from dns_lifecycle.store.scan import scan_batches
from flows.artifacts import BatchProgress
from flows.common import RunContext, StepReport
from flows.params import AsOf, BatchSize, DryRun, InstanceIds
from flows.step import run_step
from models import Account, Edition, Instance, Notification

STEP = "send-renewal-reminders"


def _due_in(window: Window, instance_ids: list[str] | None):
    already = exists().where(
        and_(
            Notification.instance_id == Instance.id,
            Notification.kind == "reminder",
            Notification.offset_days == window.offset_days,
            Notification.ref_at == Instance.expires_at,
        )
    )

    def query():
        stmt = (
            select(
                Instance.id,
                Instance.expires_at,
                Instance.account_id,
                Instance.auto_renew,
                Instance.billing_cycle,
                Instance.edition_code,
                Edition.monthly_price,
                Edition.yearly_price,
                Account.name,
                Account.locale,
                Account.timezone,
            )
            .join(Account, Account.id == Instance.account_id)
            .join(Edition, Edition.code == Instance.edition_code)
            .where(
                Instance.state == "active",
                Instance.expires_at > window.after,
                Instance.expires_at <= window.until,
                ~already,
                ~overtaken_in_ledger(
                    "reminder", window.offset_days, Instance.id, Instance.expires_at
                ),
            )
        )
        if instance_ids:
            stmt = stmt.where(Instance.id.in_(instance_ids))
        return stmt

    return query


def plan_reminders(ctx: RunContext, instance_ids: list[str] | None = None) -> StepReport:
    """Write (or, in a dry run, list) the reminders due as of ``ctx.as_of``."""
    report = StepReport(step=STEP, as_of=ctx.as_of, dry_run=ctx.dry_run)
    created_at = ctx.clock()
    windows = reminder_windows(ctx.as_of, ctx.settings.reminder_offsets_days)
    progress = BatchProgress.counting(
        STEP, ctx.db, [_due_in(w, instance_ids) for w in windows], ctx.shard
    )
    for window in windows:
        for rows in scan_batches(
            ctx.db, _due_in(window, instance_ids), batch_size=ctx.batch_size, shard=ctx.shard
        ):
            progress.advance(len(rows))
            notices = []
            for r in rows:
                to = Addressee(r.account_id, r.name, r.locale, r.timezone, r.id, r.edition_code)
                context = {
                    "expires_at": iso(r.expires_at),
                    "offset_days": window.offset_days,
                    "auto_renew": r.auto_renew,
                    "amount": money(period_price(r.monthly_price, r.yearly_price, r.billing_cycle)),
                }
                notices += notice_rows(
                    "reminder",
                    to,
                    reminder_key(r.id, r.expires_at, window.offset_days),
                    created_at,
                    context,
                    offset_days=window.offset_days,
                    ref_at=r.expires_at,
                )
            report.add("reminders_due", len(rows))
            report.planned(
                [
                    {
                        "action": "reminder",
                        "instance": r.id,
                        "offset_days": window.offset_days,
                        "expires_at": iso(r.expires_at),
                        "auto_renew": r.auto_renew,
                        "channels": "email+sms",
                    }
                    for r in rows
                ]
            )
            with ctx.db.session() as session:
                report.add("notices_queued", insert_notices(session, notices))
                session.commit()
    return report


@task(name="plan-reminders", cache_policy=NO_CACHE)
def plan_reminders_task(ctx: RunContext, instance_ids: list[str] | None = None) -> StepReport:
    return plan_reminders(ctx, instance_ids)


@flow(name=STEP)
def send_renewal_reminders(
    as_of: AsOf = None,
    dry_run: DryRun = False,
    batch_size: BatchSize = None,
    instance_ids: InstanceIds = None,
) -> StepReport:
    """Remind accounts of instances nearing expiry, by email and SMS.

    Offsets default to 30, 7, 3 and 1 days before expiry; only the most recent offset
    reached is sent, once per instance, expiry, offset and channel.
    """
    return run_step(
        STEP,
        plan_reminders_task,
        ("reminder",),
        as_of=as_of,
        dry_run=dry_run,
        batch_size=batch_size,
        instance_ids=instance_ids,
    )
