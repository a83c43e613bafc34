"""The shape every daily step shares: plan (or act), then deliver its notices."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from dns_lifecycle.store.notifications import PendingFilter
from flows.artifacts import check_failures, publish
from flows.common import RunContext, StepReport, open_run, timed
from flows.delivery import deliver_task


def run_step(
    step: str,
    act: Callable[[RunContext, list[str] | None], StepReport],
    notice_kinds: tuple[str, ...] | None,
    *,
    as_of: datetime | None,
    dry_run: bool,
    batch_size: int | None,
    instance_ids: list[str] | None,
) -> StepReport:
    """Run ``act`` (a task that decides and records), then deliver the notices it queued
    and any of the same kinds still pending from earlier runs (``None``: of any kind)."""
    with open_run(as_of, dry_run, batch_size) as ctx:
        report = StepReport(step=step, as_of=ctx.as_of, dry_run=ctx.dry_run)
        with timed(report):
            report.merge(act(ctx, instance_ids))
            ids = tuple(instance_ids) if instance_ids else None
            filt = PendingFilter(kinds=notice_kinds, instance_ids=ids)
            report.absorb(deliver_task(ctx, filt))
        publish(report)
        check_failures(report, ctx.settings.failure_threshold)
        return report
