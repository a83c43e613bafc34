"""The daily run's last step: every notice still pending, whatever its kind.

Each step delivers the kinds it queues; this one delivers the rest: the notices of
on-demand changes (an upgrade, the auto-renewal switch, a manual renewal) whose
delivery failed when they were made, and any notice a step could not deliver. So no
kind of notice can stay pending past the next daily run.
"""

from __future__ import annotations

from flows.base import lifecycle_flow
from flows.common import RunContext, StepReport
from flows.params import AsOf, BatchSize, DryRun, InstanceIds
from flows.step import run_step

STEP = "deliver-pending-notices"


def nothing_to_decide(ctx: RunContext, _instance_ids: list[str] | None) -> StepReport:
    """This step decides nothing: its work is the delivery run_step does after it."""
    return StepReport(step=STEP, as_of=ctx.as_of, dry_run=ctx.dry_run)


@lifecycle_flow(name=STEP)
def deliver_pending_notices(
    as_of: AsOf = None,
    dry_run: DryRun = False,
    batch_size: BatchSize = None,
    instance_ids: InstanceIds = None,
) -> StepReport:
    """Send every notice still pending, of any kind (e.g. the notice of an upgrade or of
    the auto-renewal switch whose delivery failed when it was made)."""
    return run_step(
        STEP,
        nothing_to_decide,
        None,
        as_of=as_of,
        dry_run=dry_run,
        batch_size=batch_size,
        instance_ids=instance_ids,
    )
