"""The daily run: every lifecycle step, in the order that keeps them consistent."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import datetime

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel

from dns_lifecycle.errors import LifecycleError
from flows.artifacts import daily_markdown
from flows.auto_renew import auto_renew
from flows.common import StepReport, resolve_as_of, shared_dry_run, wall_clock
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


class DailyReport(BaseModel):
    as_of: datetime
    dry_run: bool
    steps: list[StepReport]

    @property
    def failures(self) -> list[str]:
        return [f"{s.step}: {f}" for s in self.steps for f in s.failures]


@flow(name="daily-lifecycle")
def daily_lifecycle(
    as_of: AsOf = None,
    dry_run: DryRun = False,
    batch_size: BatchSize = None,
) -> DailyReport:
    """Run the whole lifecycle for one day: auto-renewal, expiry, reminders, release and
    delegation checks, all evaluated at the same moment.

    A dry run executes every step against a sandbox that is rolled back at the end,
    with channels that only count: its plan is exactly what a real run would do.
    """
    moment = resolve_as_of(as_of, wall_clock)
    reports, failed = [], []
    with shared_dry_run() if dry_run else nullcontext():
        for step in STEPS:
            # A failed step does not stop the later ones (each re-checks its own rows);
            # the run still ends Failed, naming every step that failed.
            state = step(as_of=moment, dry_run=dry_run, batch_size=batch_size, return_state=True)
            if state.is_completed():
                reports.append(state.result())
            else:
                failed.append(f"{step.name}: {state.message}")
    report = DailyReport(as_of=moment, dry_run=dry_run, steps=reports)
    create_markdown_artifact(
        daily_markdown(moment, dry_run, reports, failed),
        key="daily-lifecycle-summary",
        description="daily-lifecycle: counts per step and action, and failures",
    )
    if failed:
        raise StepsFailed("daily-lifecycle: " + " | ".join(failed))
    return report


class StepsFailed(LifecycleError):
    """One or more steps of the daily run failed; the others ran."""
