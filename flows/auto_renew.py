"""Step: auto-renewal orders (rule 2), paid from the account balance."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from dns_lifecycle.store.auto_renewal import auto_renewal_due
from dns_lifecycle.store.scan import scan_batches
from dns_lifecycle.store.subscriptions import auto_renew_batch
from flows.artifacts import BatchProgress
from flows.base import lifecycle_flow
from flows.common import RunContext, StepReport
from flows.params import AsOf, BatchSize, DryRun, InstanceIds
from flows.step import run_step

STEP = "auto-renew"
NOTICE_KINDS = ("order_created", "renewed", "renewal_failed")


def renew_due(ctx: RunContext, instance_ids: list[str] | None = None) -> StepReport:
    """Create and pay the auto-renewal orders due as of ``ctx.as_of`` (in a real run, not
    after the clock: a charge is never made early)."""
    report = StepReport(step=STEP, as_of=ctx.as_of, dry_run=ctx.dry_run)
    lead = ctx.settings.renewal_lead_days
    as_of = ctx.acting_as_of(report)
    query = auto_renewal_due(as_of, lead, instance_ids)
    progress = BatchProgress.counting(STEP, ctx.db, [query], ctx.shard)
    for rows in scan_batches(ctx.db, query, batch_size=ctx.batch_size, shard=ctx.shard):
        progress.advance(len(rows))
        with ctx.db.session() as session:
            outcome = auto_renew_batch(
                session,
                [r.id for r in rows],
                as_of=as_of,
                now=ctx.clock(),
                lead_days=lead,
            )
            session.commit()
        for name, n in outcome.counts.items():
            report.add(name, n)
        report.planned(outcome.plan)
    return report


@task(name="auto-renew-orders", cache_policy=NO_CACHE)
def renew_due_task(ctx: RunContext, instance_ids: list[str] | None = None) -> StepReport:
    return renew_due(ctx, instance_ids)


@lifecycle_flow(name=STEP)
def auto_renew(
    as_of: AsOf = None,
    dry_run: DryRun = False,
    batch_size: BatchSize = None,
    instance_ids: InstanceIds = None,
) -> StepReport:
    """Create, pay and announce the auto-renewal orders of instances nearing expiry.

    An instance with auto-renewal on gets one order for its next period once its expiry
    is within the lead time (default 7 days). The order is paid from the balance;
    when the balance falls short the order fails, the account is told to top up, and
    every later run retries until the instance expires.
    """
    return run_step(
        STEP,
        renew_due_task,
        NOTICE_KINDS,
        as_of=as_of,
        dry_run=dry_run,
        batch_size=batch_size,
        instance_ids=instance_ids,
    )
