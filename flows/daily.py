"""The daily run: every lifecycle step, in the order that keeps them consistent."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from datetime import datetime
from typing import Annotated

from prefect.artifacts import create_markdown_artifact
from prefect.deployments import run_deployment
from pydantic import BaseModel, Field

from dns_lifecycle.core.errors import StepsFailed
from dns_lifecycle.lifecycle.sharding import Shard
from flows.artifacts import daily_markdown
from flows.auto_renew import auto_renew
from flows.base import lifecycle_flow, report_of
from flows.common import (
    StepReport,
    run_as_of,
    run_settings,
    sharded,
    shared_dry_run,
    wall_clock,
)
from flows.delivery import warm_up as warm_up_delivery
from flows.expire import expire_instances
from flows.outlook import publish_outlook
from flows.params import AsOf, BatchSize, DryRun
from flows.pending import deliver_pending_notices
from flows.release import release_instances
from flows.reminders import send_renewal_reminders
from flows.verify import verify_delegations

# Auto-renewal first, so a renewed instance is neither reminded nor expired; expiry
# before reminders, so an expired one gets expiry notices instead; release after
# both, and it re-checks each instance under a lock, so one renewed by hand the same
# day is never released; verification after it, to see the delegations release
# changed; last, whatever notice of any kind is still pending (e.g. an upgrade's).
STEPS = (
    auto_renew,
    expire_instances,
    send_renewal_reminders,
    release_instances,
    verify_delegations,
    deliver_pending_notices,
)


SHARD_DEPLOYMENT = "daily-lifecycle-shard/shard"


class DailyReport(BaseModel):
    as_of: datetime
    dry_run: bool
    steps: list[StepReport]
    shard: str | None = None
    shard_runs: list[str] = []
    failed_steps: list[str] = []  # "step: why" for each step that ended Failed

    @property
    def failures(self) -> list[str]:
        return self.failed_steps + [f"{s.step}: {f}" for s in self.steps for f in s.failures]


Shards = Annotated[
    int,
    Field(
        ge=1,
        le=64,
        description="Split the run into this many shard runs, picked up by any worker "
        "of the pool (1: run here).",
    ),
]


@lifecycle_flow(name="daily-lifecycle")
def daily_lifecycle(
    as_of: AsOf = None,
    dry_run: DryRun = False,
    batch_size: BatchSize = None,
    shards: Shards = 1,
) -> DailyReport:
    """Run the whole lifecycle for one day: auto-renewal, expiry, reminders, release and
    delegation checks, all evaluated at the same moment.

    A dry run executes every step against a sandbox that is rolled back at the end,
    with channels that only count: its plan is exactly what a real run would do.
    With `shards` > 1 the run starts one `daily-lifecycle-shard/shard` run per shard
    and waits for them; each works on its share of the instances.
    """
    moment = run_as_of(as_of, dry_run, wall_clock)
    if shards > 1:
        return _fan_out(moment, dry_run, batch_size, shards)
    return _run_day(moment, dry_run, batch_size, None)


@lifecycle_flow(name="daily-lifecycle-shard")
def daily_lifecycle_shard(
    as_of: Annotated[datetime, Field(description="The moment the split run evaluates.")],
    shard: Annotated[int, Field(ge=0, le=63, description="The shard this run works on.")],
    shards: Shards,
    dry_run: DryRun = False,
    batch_size: BatchSize = None,
) -> DailyReport:
    """One shard of a split daily run, started by `daily-lifecycle` with `shards` > 1:
    every step, for the instances whose id hashes to `shard` of `shards`."""
    moment = run_as_of(as_of, dry_run, wall_clock)
    return _run_day(moment, dry_run, batch_size, Shard(shard, shards))


def _run_day(
    moment: datetime, dry_run: bool, batch_size: int | None, part: Shard | None
) -> DailyReport:
    if not dry_run:
        warm_up_delivery(run_settings())
    reports, failed = [], []
    with sharded(part), shared_dry_run() if dry_run else nullcontext():
        for step in STEPS:
            # A failed step does not stop the later ones (each re-checks its own rows);
            # the run still ends Failed, naming every step that failed.
            state = step(as_of=moment, dry_run=dry_run, batch_size=batch_size, return_state=True)
            done = report_of(state)
            if not isinstance(done, StepReport):
                # A step that failed before reporting anything is still listed, so the
                # summary names every step; failed_steps says why it failed.
                done = StepReport(step=step.name, as_of=moment, dry_run=dry_run)
            reports.append(done)
            if not state.is_completed():
                failed.append(f"{step.name}: {state.message}")
        if part is None:  # a split run's outlook is its parent's
            failed += publish_outlook(moment, dry_run)
    label = f"{part.index + 1} of {part.count}" if part else None
    report = DailyReport(
        as_of=moment, dry_run=dry_run, steps=reports, shard=label, failed_steps=failed
    )
    create_markdown_artifact(
        daily_markdown(moment, dry_run, reports, failed, shard=label),
        key="daily-lifecycle-summary",
        description="daily-lifecycle: counts per step and action, and failures",
    )
    if failed:
        raise StepsFailed("daily-lifecycle: " + " | ".join(failed), report=report)
    return report


def _fan_out(moment: datetime, dry_run: bool, batch_size: int | None, shards: int) -> DailyReport:
    """One shard run per shard on the work pool; wait for all, fail if any failed."""

    def one(index: int):
        return run_deployment(
            SHARD_DEPLOYMENT,
            # An empty optional parameter is left out: the deployment's schema types it
            # without null, as the form shows it.
            parameters={
                name: value
                for name, value in {
                    "as_of": moment.isoformat(),
                    "dry_run": dry_run,
                    "batch_size": batch_size,
                    "shards": shards,
                    "shard": index,
                }.items()
                if value is not None
            },
            timeout=None,  # wait until it ends
            poll_interval=1,
            as_subflow=True,
        )

    with ThreadPoolExecutor(max_workers=shards) as pool:
        runs = list(pool.map(one, range(shards)))
    failed = [f"{r.name}: {r.state.message}" for r in runs if not r.state.is_completed()]
    failed += publish_outlook(moment, dry_run)
    if failed:
        raise StepsFailed("daily-lifecycle shards failed: " + " | ".join(failed))
    return DailyReport(
        as_of=moment, dry_run=dry_run, steps=[], shard_runs=[str(r.id) for r in runs]
    )
