"""Step: expire instances past their expiry, and warn the day before release (rule 5)."""

from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from dns_lifecycle.lifecycle.expiry import release_at
from dns_lifecycle.lifecycle.notices import iso
from dns_lifecycle.store.expiry import (
    expire,
    past_expiry,
    queue_release_warnings,
    release_warning_due,
)
from dns_lifecycle.store.scan import scan_batches
from flows.artifacts import BatchProgress
from flows.base import lifecycle_flow
from flows.common import RunContext, StepReport
from flows.params import AsOf, BatchSize, DryRun, InstanceIds
from flows.step import run_step

STEP = "expire-instances"
NOTICE_KINDS = ("expired", "release_warning")


def expire_due(ctx: RunContext, instance_ids: list[str] | None = None) -> StepReport:
    """Mark active instances past expiry as expired and queue the notices (in a real run,
    as of no later than the clock: an instance is never expired early)."""
    report = StepReport(step=STEP, as_of=ctx.as_of, dry_run=ctx.dry_run)
    grace = ctx.settings.grace_days
    as_of = ctx.acting_as_of(report)
    due = past_expiry(as_of, instance_ids)
    progress = BatchProgress.counting(STEP, ctx.db, [due], ctx.shard)
    for rows in scan_batches(ctx.db, due, batch_size=ctx.batch_size, shard=ctx.shard):
        progress.advance(len(rows))
        report.planned(
            [
                {
                    "action": "expire",
                    "instance": r.id,
                    "expires_at": iso(r.expires_at),
                    "release_at": iso(release_at(r.expires_at, grace)),
                }
                for r in rows
            ]
        )
        with ctx.db.session() as session:
            expired, queued = expire(session, rows, as_of=as_of, now=ctx.clock(), grace_days=grace)
            report.add("instances_expired", len(expired))
            report.add("notices_queued", queued)
            session.commit()
    _warn_before_release(ctx, report, instance_ids, as_of)
    return report


def _warn_before_release(
    ctx: RunContext, report: StepReport, instance_ids: list[str] | None, as_of: datetime
) -> None:
    grace = ctx.settings.grace_days
    due = release_warning_due(as_of, grace, instance_ids)
    for rows in scan_batches(ctx.db, due, batch_size=ctx.batch_size, shard=ctx.shard):
        report.add("release_warnings", len(rows))
        report.planned(
            [
                {
                    "action": "release_warning",
                    "instance": r.id,
                    "release_at": iso(release_at(r.expires_at, grace)),
                }
                for r in rows
            ]
        )
        with ctx.db.session() as session:
            queued = queue_release_warnings(
                session, rows, as_of=as_of, now=ctx.clock(), grace_days=grace
            )
            report.add("notices_queued", queued)
            session.commit()


@task(name="expire-and-warn", cache_policy=NO_CACHE)
def expire_due_task(ctx: RunContext, instance_ids: list[str] | None = None) -> StepReport:
    return expire_due(ctx, instance_ids)


@lifecycle_flow(name=STEP)
def expire_instances(
    as_of: AsOf = None,
    dry_run: DryRun = False,
    batch_size: BatchSize = None,
    instance_ids: InstanceIds = None,
) -> StepReport:
    """Expire active instances past their expiry and tell each account its release date;
    send the last warning the day before release. DNS keeps resolving during the grace
    period (default 7 days)."""
    return run_step(
        STEP,
        expire_due_task,
        NOTICE_KINDS,
        as_of=as_of,
        dry_run=dry_run,
        batch_size=batch_size,
        instance_ids=instance_ids,
    )
