"""Step: release instances whose grace period has ended (rules 6 and 7).

The flow opens the run, hands it to the release engine (``dns_lifecycle.release``),
which moves every domain stage by stage and releases the instances whose domains all
passed the delegation, then delivers the tickets it opened and reports.
"""

from __future__ import annotations

from collections.abc import Callable

from prefect import task
from prefect.cache_policies import NO_CACHE

from dns_lifecycle.release.report import STEP
from dns_lifecycle.release.run import release
from dns_lifecycle.store.expiry import Query
from flows.artifacts import BatchProgress
from flows.base import lifecycle_flow
from flows.common import RunContext, StepReport
from flows.params import AsOf, BatchSize, DryRun, InstanceIds
from flows.step import run_step
from flows.tickets import deliver_tickets

NOTICE_KINDS = ("released",)


def release_due(ctx: RunContext, instance_ids: list[str] | None = None) -> StepReport:
    """Release every instance expired for the whole grace period, stage by stage, and
    finish the drain of instances released earlier. A real run releases nothing whose
    grace period has not ended by the clock."""
    report = StepReport(step=STEP, as_of=ctx.as_of, dry_run=ctx.dry_run)

    def counting(expired: Query) -> Callable[[int], None]:
        return BatchProgress.counting(STEP, ctx.db, [expired], ctx.shard).advance

    release(ctx, report, instance_ids, counting)
    report.absorb(deliver_tickets(ctx))
    return report


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
