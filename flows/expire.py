"""Step: expire instances past their expiry, and warn the day before release (rule 5)."""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import and_, exists, select, update

from dns_lifecycle.lifecycle.expiry import (
    expired_key,
    release_at,
    release_warning_key,
    release_warning_window,
)
from dns_lifecycle.lifecycle.notices import Addressee, iso, notice_rows
from dns_lifecycle.store.notifications import insert_notices, overtaken_in_ledger
from dns_lifecycle.store.scan import scan_batches
from flows.artifacts import BatchProgress
from flows.common import RunContext, StepReport
from flows.params import AsOf, BatchSize, DryRun, InstanceIds
from flows.step import run_step
from models import Account, Instance, Notification

STEP = "expire-instances"
NOTICE_KINDS = ("expired", "release_warning")

COLUMNS = (
    Instance.id,
    Instance.expires_at,
    Instance.account_id,
    Instance.edition_code,
    Account.name,
    Account.locale,
    Account.timezone,
)


def _to(r) -> Addressee:
    return Addressee(r.account_id, r.name, r.locale, r.timezone, r.id, r.edition_code)


def expire_due(ctx: RunContext, instance_ids: list[str] | None = None) -> StepReport:
    """Mark active instances past expiry as expired and queue the notices."""
    report = StepReport(step=STEP, as_of=ctx.as_of, dry_run=ctx.dry_run)
    grace = ctx.settings.grace_days

    def past_expiry():
        stmt = (
            select(*COLUMNS)
            .join(Account, Account.id == Instance.account_id)
            .where(Instance.state == "active", Instance.expires_at <= ctx.as_of)
        )
        return stmt.where(Instance.id.in_(instance_ids)) if instance_ids else stmt

    progress = BatchProgress.counting(STEP, ctx.db, [past_expiry], ctx.shard)
    for rows in scan_batches(ctx.db, past_expiry, batch_size=ctx.batch_size, shard=ctx.shard):
        progress.advance(len(rows))
        report.planned(
            [
                {
                    "action": "expire",
                    "instance": r.id,
                    "expires_at": iso(r.expires_at),
                    "release_at": iso(release_at(r.expires_at, grace)),
                }
                for r in rows
            ]
        )
        by_id = {r.id: r for r in rows}
        with ctx.db.session() as session:
            # Set-based, and conditional: an instance renewed since the scan stays active.
            expired = session.execute(
                update(Instance)
                .where(
                    Instance.id.in_(list(by_id)),
                    Instance.state == "active",
                    Instance.expires_at <= ctx.as_of,
                )
                .values(state="expired")
                .returning(Instance.id)
            ).scalars()
            now = ctx.clock()
            notices = []
            for instance_id in expired:
                r = by_id[instance_id]
                report.add("instances_expired")
                notices += notice_rows(
                    "expired",
                    _to(r),
                    expired_key(r.id, r.expires_at),
                    now,
                    {
                        "expires_at": iso(r.expires_at),
                        "release_at": iso(release_at(r.expires_at, grace)),
                    },
                    ref_at=r.expires_at,
                )
            report.add("notices_queued", insert_notices(session, notices))
            session.commit()
    _warn_before_release(ctx, report, instance_ids)
    return report


def _warn_before_release(
    ctx: RunContext, report: StepReport, instance_ids: list[str] | None
) -> None:
    grace = ctx.settings.grace_days
    after, until = release_warning_window(ctx.as_of, grace)
    warned = exists().where(
        and_(
            Notification.instance_id == Instance.id,
            Notification.kind == "release_warning",
            Notification.ref_at == Instance.expires_at,
        )
    )

    def warning_due():
        stmt = (
            select(*COLUMNS)
            .join(Account, Account.id == Instance.account_id)
            .where(
                Instance.state == "expired",
                Instance.expires_at > after,
                Instance.expires_at <= until,
                ~warned,
                ~overtaken_in_ledger("release_warning", None, Instance.id, Instance.expires_at),
            )
        )
        return stmt.where(Instance.id.in_(instance_ids)) if instance_ids else stmt

    for rows in scan_batches(ctx.db, warning_due, batch_size=ctx.batch_size, shard=ctx.shard):
        report.add("release_warnings", len(rows))
        report.planned(
            [
                {
                    "action": "release_warning",
                    "instance": r.id,
                    "release_at": iso(release_at(r.expires_at, grace)),
                }
                for r in rows
            ]
        )
        now = ctx.clock()
        notices = []
        for r in rows:
            notices += notice_rows(
                "release_warning",
                _to(r),
                release_warning_key(r.id, r.expires_at),
                now,
                {"release_at": iso(release_at(r.expires_at, grace))},
                ref_at=r.expires_at,
            )
        with ctx.db.session() as session:
            report.add("notices_queued", insert_notices(session, notices))
            session.commit()


@task(name="expire-and-warn", cache_policy=NO_CACHE)
def expire_due_task(ctx: RunContext, instance_ids: list[str] | None = None) -> StepReport:
    return expire_due(ctx, instance_ids)


@flow(name=STEP)
def expire_instances(
    as_of: AsOf = None,
    dry_run: DryRun = False,
    batch_size: BatchSize = None,
    instance_ids: InstanceIds = None,
) -> StepReport:
    """Expire active instances past their expiry and tell each account its release date;
    send the last warning the day before release. DNS keeps resolving during the grace
    period (default 7 days)."""
    return run_step(
        STEP,
        expire_due_task,
        NOTICE_KINDS,
        as_of=as_of,
        dry_run=dry_run,
        batch_size=batch_size,
        instance_ids=instance_ids,
    )
