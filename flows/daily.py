"""The daily run: every lifecycle step, in the order that keeps them consistent."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from datetime import datetime
from typing import Annotated

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.deployments import run_deployment
from pydantic import BaseModel, Field

from dns_lifecycle.core.errors import StepsFailed
from dns_lifecycle.lifecycle.sharding import Shard
from flows.artifacts import daily_markdown
from flows.auto_renew import auto_renew
from flows.common import StepReport, run_as_of, sharded, shared_dry_run, wall_clock
from flows.expire import expire_instances
from flows.params import AsOf, BatchSize, DryRun
from flows.release import release_instances
from flows.reminders import send_renewal_reminders
from flows.verify import verify_delegations

# Auto-renewal first, so a renewed instance is neither reminded nor expired; expiry
# before reminders, so an expired one gets expiry notices instead; release after
# both, and it re-checks each instance under a lock, so one renewed by hand the same
# day is never released; verification last, to see the delegations release changed.
STEPS = (
    auto_renew,
    expire_instances,
    send_renewal_reminders,
    release_instances,
    verify_delegations,
)


SHARD_DEPLOYMENT = "daily-lifecycle/shard"


class DailyReport(BaseModel):
    as_of: datetime
    dry_run: bool
    steps: list[StepReport]
    shard: str | None = None
    shard_runs: list[str] = []

    @property
    def failures(self) -> list[str]:
        return [f"{s.step}: {f}" for s in self.steps for f in s.failures]


@flow(name="daily-lifecycle")
def daily_lifecycle(
    as_of: AsOf = None,
    dry_run: DryRun = False,
    batch_size: BatchSize = None,
    shards: Annotated[
        int,
        Field(
            ge=1,
            le=64,
            description="Split the run into this many shard runs, picked up by any worker "
            "of the pool (1: run here).",
        ),
    ] = 1,
    shard: Annotated[
        int | None,
        Field(ge=0, le=63, description="Set by a split run: the shard this run works on."),
    ] = None,
) -> DailyReport:
    """Run the whole lifecycle for one day: auto-renewal, expiry, reminders, release and
    delegation checks, all evaluated at the same moment.

    A dry run executes every step against a sandbox that is rolled back at the end,
    with channels that only count: its plan is exactly what a real run would do.
    With `shards` > 1 the run starts one `daily-lifecycle/shard` run per shard and
    waits for them; each works on its share of the instances.
    """
    moment = run_as_of(as_of, dry_run, wall_clock)
    if shards > 1 and shard is None:
        return _fan_out(moment, dry_run, batch_size, shards)
    part = Shard(shard, shards) if shard is not None else None
    reports, failed = [], []
    with sharded(part), shared_dry_run() if dry_run else nullcontext():
        for step in STEPS:
            # A failed step does not stop the later ones (each re-checks its own rows);
            # the run still ends Failed, naming every step that failed.
            state = step(as_of=moment, dry_run=dry_run, batch_size=batch_size, return_state=True)
            if state.is_completed():
                reports.append(state.result())
            else:
                failed.append(f"{step.name}: {state.message}")
    label = f"{part.index + 1} of {part.count}" if part else None
    report = DailyReport(as_of=moment, dry_run=dry_run, steps=reports, shard=label)
    create_markdown_artifact(
        daily_markdown(moment, dry_run, reports, failed, shard=label),
        key="daily-lifecycle-summary",
        description="daily-lifecycle: counts per step and action, and failures",
    )
    if failed:
        raise StepsFailed("daily-lifecycle: " + " | ".join(failed))
    return report


def _fan_out(moment: datetime, dry_run: bool, batch_size: int | None, shards: int) -> DailyReport:
    """One shard run per shard on the work pool; wait for all, fail if any failed."""

    def one(index: int):
        return run_deployment(
            SHARD_DEPLOYMENT,
            parameters={
                "as_of": moment.isoformat(),
                "dry_run": dry_run,
                "batch_size": batch_size,
                "shards": shards,
                "shard": index,
            },
            timeout=None,  # wait until it ends
            poll_interval=1,
            as_subflow=True,
        )

    with ThreadPoolExecutor(max_workers=shards) as pool:
        runs = list(pool.map(one, range(shards)))
    failed = [f"{r.name}: {r.state.message}" for r in runs if not r.state.is_completed()]
    if failed:
        raise StepsFailed("daily-lifecycle shards failed: " + " | ".join(failed))
    return DailyReport(
        as_of=moment, dry_run=dry_run, steps=[], shard_runs=[str(r.id) for r in runs]
    )
