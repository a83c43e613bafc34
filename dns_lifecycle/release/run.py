"""A release run: the instances due, batch by batch, then the drains still going (rule 6).

Each domain moves through the stages of ``lifecycle.expiry.STAGES``: every call to a
DNS cluster or a registrar is made outside any transaction, and its outcome is recorded
(``store.release_outcomes.record_outcomes``) before the next call. Each domain goes as far as it
can in a run, a few domains at a time. The instance is released, and told, once all its domains
have passed the delegation. Later runs finish the drain: the paid copy is deleted once
its drain is over.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from dns_lifecycle.core.run import RunContext, StepReport
from dns_lifecycle.core.turns import Turn, taking
from dns_lifecycle.lifecycle import expiry
from dns_lifecycle.release.pool import ReleasePool
from dns_lifecycle.release.report import Causes
from dns_lifecycle.store import release as store
from dns_lifecycle.store.expiry import Query
from dns_lifecycle.store.scan import scan_batches

# What a release is handed to count its progress: given the query of the instances due,
# what is told each batch's size.
Counting = Callable[[Query], Callable[[int], None]]


def release(
    ctx: RunContext,
    report: StepReport,
    instance_ids: list[str] | None = None,
    counting: Counting = lambda query: lambda n: None,
) -> None:
    """Release every instance expired for the whole grace period (of ``instance_ids``
    only, when given), a batch at a time, and finish the drain of instances released
    earlier. ``counting`` is handed the query of the instances due and returns what is
    told each batch's size (the run's progress). A real run releases nothing whose grace
    period has not ended by the clock. A real run releases only in its turn: another run
    releasing the same instances at the time has them to itself, and this one says so."""
    if ctx.dry_run:
        _release(ctx, report, instance_ids, counting)
        return
    with taking(ctx.db, _turns(ctx)) as ours:
        if ours:
            _release(ctx, report, instance_ids, counting)
            return
    report.add("release_left_to_another_run")
    report.note(
        "another run is releasing now (it holds the release's turn): this run released "
        "nothing and left the release to it; a run after it finishes what it left"
    )


def _turns(ctx: RunContext) -> list[Turn]:
    """The whole release's turn; a shard holds it shared with the other shards of its
    split run, beside its own shard's."""
    if ctx.shard is None:
        return [Turn("release")]
    shard = ctx.shard
    return [Turn("release", shared=True), Turn(f"release-{shard.index}-of-{shard.count}")]


def _release(
    ctx: RunContext, report: StepReport, instance_ids: list[str] | None, counting: Counting
) -> None:
    as_of = ctx.acting_as_of(report)
    expired = store.expired_due(as_of, ctx.settings.grace_days, instance_ids)
    progress = counting(expired)
    pool: ReleasePool | None = None  # opened with the first batch, closed at the end
    causes = Causes()  # a cluster's fault is said once for the step, not per batch
    try:
        for rows in scan_batches(ctx.db, expired, batch_size=ctx.batch_size, shard=ctx.shard):
            progress(len(rows))
            pool = pool or ReleasePool(ctx)
            ids = [r.id for r in rows]
            with ctx.db.session() as session:
                store.begin_release(session, ids, ctx.clock())
                session.commit()
            pool.advance(ids, report, causes)
            _finish(ctx, ids, report, as_of)
        draining = store.released_unfinished(instance_ids)
        for rows in scan_batches(ctx.db, draining, batch_size=ctx.batch_size, shard=ctx.shard):
            pool = pool or ReleasePool(ctx)
            pool.advance([r.id for r in rows], report, causes)
    finally:
        if pool is not None:
            pool.close()
        causes.report_to(report)


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
