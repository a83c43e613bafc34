"""Step: release instances whose grace period has ended (rules 6 and 7).

Each domain moves through the stages of ``lifecycle.expiry.STAGES``: every call to a
DNS cluster or a registrar is made here, outside any transaction, and its outcome is
recorded (``store.release.record_outcomes``) before the next call. Each domain goes
as far as it can in a run, a few domains at a time. The instance
is released, and told, once all its domains have passed the delegation. Later runs
finish the drain: the paid copy is deleted once its drain is over.
"""

from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from dns_lifecycle.lifecycle import expiry
from dns_lifecycle.store import release as store
from dns_lifecycle.store.scan import scan_batches
from flows.artifacts import BatchProgress
from flows.base import lifecycle_flow
from flows.common import RunContext, StepReport
from flows.params import AsOf, BatchSize, DryRun, InstanceIds
from flows.release_pool import ReleasePool
from flows.release_stages import STEP, Causes, SharedReport, Tools, domain_chunks
from flows.step import run_step
from flows.tickets import deliver_tickets

NOTICE_KINDS = ("released",)


def advance(pool: ReleasePool, instance_ids: list[str], report: StepReport, causes: Causes) -> None:
    """Move every domain of these instances as far as it can go in this run."""
    chunks = domain_chunks(pool.ctx, instance_ids)
    shared = SharedReport(report, causes)
    pool.run(chunks, shared)
    shared.close()


def release_due(ctx: RunContext, instance_ids: list[str] | None = None) -> StepReport:
    """Release every instance expired for the whole grace period, stage by stage, and
    finish the drain of instances released earlier. A real run releases nothing whose
    grace period has not ended by the clock."""
    report = StepReport(step=STEP, as_of=ctx.as_of, dry_run=ctx.dry_run)
    grace = ctx.settings.grace_days
    as_of = ctx.acting_as_of(report)
    expired = store.expired_due(as_of, grace, instance_ids)
    progress = BatchProgress.counting(STEP, ctx.db, [expired], ctx.shard)
    pool: ReleasePool | None = None  # opened with the first batch, closed at the end
    causes = Causes()  # a cluster's fault is said once for the step, not per batch
    try:
        for rows in scan_batches(ctx.db, expired, batch_size=ctx.batch_size, shard=ctx.shard):
            progress.advance(len(rows))
            pool = pool or ReleasePool(ctx, Tools(ctx))
            ids = [r.id for r in rows]
            with ctx.db.session() as session:
                store.begin_release(session, ids, ctx.clock())
                session.commit()
            advance(pool, ids, report, causes)
            _finish(ctx, ids, report, as_of)
        draining = store.released_unfinished(instance_ids)
        for rows in scan_batches(ctx.db, draining, batch_size=ctx.batch_size, shard=ctx.shard):
            pool = pool or ReleasePool(ctx, Tools(ctx))
            advance(pool, [r.id for r in rows], report, causes)
    finally:
        if pool is not None:
            pool.close()
            pool.tools.close()
        causes.report_to(report)
    report.absorb(deliver_tickets(ctx))
    return report


def _finish(ctx: RunContext, instance_ids: list[str], report: StepReport, as_of: datetime) -> None:
    """Release the instances whose domains all passed the delegation, in one
    transaction; if that fails, one by one, so that an instance's fault names it and
    keeps no other from its release."""
    try:
        released = _finish_in_one(ctx, instance_ids, as_of)
    except Exception as exc:
        if len(instance_ids) == 1:
            report.add("release_failures")
            report.fail(f"instance {instance_ids[0]}: {type(exc).__name__}: {exc}")
        else:
            for instance_id in instance_ids:
                _finish(ctx, [instance_id], report, as_of)
        return
    if released:
        report.add("instances_released", released)


def _finish_in_one(ctx: RunContext, instance_ids: list[str], as_of: datetime) -> int:
    settings = ctx.settings
    with ctx.db.session() as session:
        released = store.finish_instances(
            session,
            instance_ids,
            as_of=as_of,
            grace_days=settings.grace_days,
            now=ctx.clock(),
            change_by=lambda at: expiry.change_by(at, settings.manual_drain_days),
        )
        session.commit()
    return len(released)


@task(name="release-instances", cache_policy=NO_CACHE)
def release_due_task(ctx: RunContext, instance_ids: list[str] | None = None) -> StepReport:
    return release_due(ctx, instance_ids)


@lifecycle_flow(name=STEP)
def release_instances(
    as_of: AsOf = None,
    dry_run: DryRun = False,
    batch_size: BatchSize = None,
    instance_ids: InstanceIds = None,
) -> StepReport:
    """Release instances unrenewed for the whole grace period, domain by domain: keep a
    zone-file copy, create the zone on the free cluster and verify it by asking its name
    servers, switch unlocked HiChina domains to the free name servers (a ticket for every
    domain that needs its owner), and delete the paid copy once its drain is over."""
    return run_step(
        STEP,
        release_due_task,
        NOTICE_KINDS,
        as_of=as_of,
        dry_run=dry_run,
        batch_size=batch_size,
        instance_ids=instance_ids,
    )
