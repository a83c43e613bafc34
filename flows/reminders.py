"""Step: send renewal reminders (rule 1) by email and SMS."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from dns_lifecycle.lifecycle.notices import iso
from dns_lifecycle.lifecycle.reminders import reminder_windows
from dns_lifecycle.store.reminders import queue_reminders, reminders_due
from dns_lifecycle.store.scan import scan_batches
from flows.artifacts import BatchProgress
from flows.base import lifecycle_flow
from flows.common import RunContext, StepReport
from flows.params import AsOf, BatchSize, DryRun, InstanceIds
from flows.step import run_step

STEP = "send-renewal-reminders"


def plan_reminders(ctx: RunContext, instance_ids: list[str] | None = None) -> StepReport:
    """Write (or, in a dry run, list) the reminders due as of ``ctx.as_of``."""
    report = StepReport(step=STEP, as_of=ctx.as_of, dry_run=ctx.dry_run)
    created_at = ctx.clock()
    windows = reminder_windows(ctx.as_of, ctx.settings.reminder_offsets_days)
    queries = [reminders_due(w, instance_ids) for w in windows]
    progress = BatchProgress.counting(STEP, ctx.db, queries, ctx.shard)
    for window, due in zip(windows, queries, strict=True):
        for rows in scan_batches(ctx.db, due, batch_size=ctx.batch_size, shard=ctx.shard):
            progress.advance(len(rows))
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
                queued = queue_reminders(
                    session, rows, offset_days=window.offset_days, as_of=ctx.as_of, now=created_at
                )
                report.add("notices_queued", queued)
                session.commit()
    return report


@task(name="plan-reminders", cache_policy=NO_CACHE)
def plan_reminders_task(ctx: RunContext, instance_ids: list[str] | None = None) -> StepReport:
    return plan_reminders(ctx, instance_ids)


@lifecycle_flow(name=STEP)
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
