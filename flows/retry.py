"""On demand: requeue failed deliveries and send them again.

A permanent failure (a refused address, an invalid number) needs a person: once the
account's address or number is corrected, this flow puts the failed rows back in the
queue and delivers them. The rows keep their ledger keys, so nothing is duplicated.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import Field
from sqlalchemy import update

from dns_lifecycle.lifecycle.notices import NOTICE_KINDS
from dns_lifecycle.store.notifications import PendingFilter
from flows.artifacts import publish
from flows.common import RunContext, StepReport, open_run, timed
from flows.delivery import deliver_task
from models import Notification

STEP = "retry-failed-notifications"
TABLE = Notification.__table__  # type: ignore[attr-defined]


def requeue_failed(ctx: RunContext, since: datetime, kinds: list[str] | None) -> int:
    """Put failed notices created since ``since`` back to pending; returns how many."""
    stmt = (
        update(TABLE)
        .where(TABLE.c.state == "failed", TABLE.c.created_at >= since)
        .values(state="pending", claim_token=None, claimed_until=None)
    )
    if kinds:
        stmt = stmt.where(TABLE.c.kind.in_(kinds))
    with ctx.db.session() as session:
        # Through the session's connection: a Core UPDATE's result reports its row count.
        count = session.connection().execute(stmt).rowcount
        session.commit()
    return count


@task(name="requeue-failed", cache_policy=NO_CACHE)
def requeue_task(ctx: RunContext, since: datetime, kinds: list[str] | None) -> int:
    return requeue_failed(ctx, since, kinds)


@flow(name=STEP)
def retry_failed_notifications(
    since: Annotated[
        datetime,
        Field(description="Requeue failed notices created at or after this moment."),
    ],
    kinds: Annotated[
        list[str] | None,
        Field(description=f"Only these notice kinds (default: all): {', '.join(NOTICE_KINDS)}."),
    ] = None,
    dry_run: Annotated[
        bool, Field(description="Only count what would be requeued and sent.")
    ] = False,
) -> StepReport:
    """Requeue failed email and SMS deliveries (e.g. after fixing an address) and send them."""
    unknown = sorted(set(kinds or ()) - set(NOTICE_KINDS))
    if unknown:
        raise ValueError(
            f"kinds: unknown notice kind(s) {', '.join(unknown)}; choose from "
            + ", ".join(NOTICE_KINDS)
        )
    if since.tzinfo is None:
        raise ValueError("since: give a time zone offset, e.g. 2026-12-01T00:00:00+08:00")
    with open_run(None, dry_run, None) as ctx:
        report = StepReport(step=STEP, as_of=ctx.as_of, dry_run=dry_run)
        with timed(report):
            report.add("requeued", requeue_task(ctx, since, kinds))
            filt = PendingFilter(kinds=tuple(kinds) if kinds else None, created_since=since)
            report.absorb(deliver_task(ctx, filt))
        publish(report)
        return report
