"""Step: release instances whose grace period has ended (rules 6 and 7)."""

from __future__ import annotations

import time

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import select

from dns_lifecycle.channels.registrar import Registrar, registrar_for
from dns_lifecycle.channels.registrar.database import DatabaseRegistrar
from dns_lifecycle.core.errors import DomainLocked, RegistrarRefused, RegistrarUnavailable
from dns_lifecycle.lifecycle.expiry import release_due_until
from dns_lifecycle.lifecycle.nameservers import NameserverAction
from dns_lifecycle.store.release import domains_to_switch, release_instance
from dns_lifecycle.store.scan import scan_batches
from flows.artifacts import BatchProgress
from flows.base import lifecycle_flow
from flows.common import RunContext, StepReport
from flows.params import AsOf, BatchSize, DryRun, InstanceIds
from flows.step import run_step
from flows.tickets import deliver_tickets
from models import Instance

STEP = "release-instances"
NOTICE_KINDS = ("released",)


def release_due(ctx: RunContext, instance_ids: list[str] | None = None) -> StepReport:
    """Release every instance expired for the whole grace period, one transaction each."""
    report = StepReport(step=STEP, as_of=ctx.as_of, dry_run=ctx.dry_run)
    # A dry run never calls a registrar: the embedded one stands in, refusing locked
    # domains as a registrar would, and its writes stay in the rolled-back sandbox.
    registrar = DatabaseRegistrar(ctx.db) if ctx.dry_run else registrar_for(ctx.settings, ctx.db)
    try:
        _release_batches(ctx, report, registrar, instance_ids)
    finally:
        registrar.close()
    report.absorb(deliver_tickets(ctx))
    return report


def _release_batches(
    ctx: RunContext, report: StepReport, registrar: Registrar, instance_ids: list[str] | None
) -> None:
    grace = ctx.settings.grace_days

    def grace_over():
        stmt = select(Instance.id, Instance.expires_at).where(
            Instance.state == "expired", Instance.expires_at <= release_due_until(ctx.as_of, grace)
        )
        return stmt.where(Instance.id.in_(instance_ids)) if instance_ids else stmt

    progress = BatchProgress.counting(STEP, ctx.db, [grace_over], ctx.shard)
    for rows in scan_batches(ctx.db, grace_over, batch_size=ctx.batch_size, shard=ctx.shard):
        progress.advance(len(rows))
        for r in rows:
            try:
                with ctx.db.session() as session:
                    nameservers, names = domains_to_switch(
                        session, r.id, as_of=ctx.as_of, grace_days=grace
                    )
                # Outside any transaction: the registrar may be slow, and the embedded
                # one writes in a transaction of its own.
                switched = switch_nameservers(registrar, names, nameservers)
                with ctx.db.session() as session:
                    released = release_instance(
                        session,
                        r.id,
                        as_of=ctx.as_of,
                        now=ctx.clock(),
                        grace_days=grace,
                        switched=switched,
                    )
                    session.commit()
            except Exception as exc:  # one instance's failure never stops the others
                report.add("release_failures")
                report.fail(f"instance {r.id}: {type(exc).__name__}: {exc}")
                continue
            if released is None:
                report.add("skipped_renewed_or_claimed")
                continue
            report.add("instances_released")
            report.add("records_moved", released.records_moved)
            report.add("tickets_opened", released.tickets_opened)
            for d in released.domains:
                report.add(f"nameservers_{d['action']}")
            report.planned(
                [
                    {
                        "action": "release",
                        "instance": r.id,
                        "domain": d["name"],
                        "nameservers": d["action"],
                    }
                    for d in released.domains
                ]
            )


# Seconds between polls of a switch the registrar has not applied yet.
SWITCH_POLL_DELAYS = (0.5, 1.0, 2.0, 4.0)


def switch_nameservers(
    registrar: Registrar,
    names: list[str],
    nameservers: list[str],
    poll_delays: tuple[float, ...] = SWITCH_POLL_DELAYS,
) -> dict[str, NameserverAction]:
    """Have the registrar point each domain at ``nameservers``: ``switched``, or
    ``domain_locked`` when a lock forbids it.

    Raises ``RegistrarUnavailable`` for a change still pending after the polls, and
    ``RegistrarRefused`` for one the registrar gave up: the instance waits for the next
    run, which starts the change again (safe: it asks for the same servers).
    """
    outcome: dict[str, NameserverAction] = {}
    for name in names:
        try:
            task_id = registrar.start_switch(name, nameservers)
        except DomainLocked:
            outcome[name] = "domain_locked"
            continue
        state = registrar.switch_state(task_id)
        for delay in poll_delays:
            if state.done or state.failed_reason:
                break
            time.sleep(delay)
            state = registrar.switch_state(task_id)
        if state.failed_reason:
            raise RegistrarRefused(
                f"the registrar could not switch {name} to {', '.join(nameservers)} "
                f"(task {task_id}): {state.failed_reason}"
            )
        if not state.done:
            raise RegistrarUnavailable(
                f"the registrar has not yet switched {name} (task {task_id}); the next "
                "run checks again"
            )
        outcome[name] = "switched"
    return outcome


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
    """Release instances unrenewed for the whole grace period: keep a zone-file copy of
    every domain, move every record to the free cluster (verified before commit),
    switch unlocked HiChina domains to the free name servers, and open a ticket for
    every domain that needs its owner."""
    return run_step(
        STEP,
        release_due_task,
        NOTICE_KINDS,
        as_of=as_of,
        dry_run=dry_run,
        batch_size=batch_size,
        instance_ids=instance_ids,
    )
