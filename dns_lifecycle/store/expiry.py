"""Expiry (rule 5): the scans that find what is due, and the writes that do it.

The windows come from ``lifecycle.expiry``, so what the database is asked for is the
rule the tests check instance by instance. Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, select, update
from sqlmodel import Session, col

from dns_lifecycle.lifecycle.expiry import (
    ACTIVE,
    EXPIRED,
    expired_until,
    release_at,
    release_warning_window,
)
from dns_lifecycle.lifecycle.notices import Expired, ReleaseWarning
from dns_lifecycle.store.notifications import insert_notices, overtaken_in_ledger
from dns_lifecycle.store.scan import ADDRESSEE_COLUMNS, AnySelect, row_addressee
from models import Account, Instance, Notification

Query = Callable[[], AnySelect]


def _of(stmt: AnySelect, instance_ids: list[str] | None) -> AnySelect:
    return stmt.where(col(Instance.id).in_(instance_ids)) if instance_ids else stmt


def past_expiry(as_of: datetime, instance_ids: list[str] | None = None) -> Query:
    """Active instances whose expiry has come (``is_expired``), for ``scan_batches``."""

    def query() -> AnySelect:
        stmt = (
            select(*ADDRESSEE_COLUMNS)
            .join(Account, col(Account.id) == Instance.account_id)
            .where(col(Instance.state) == ACTIVE, col(Instance.expires_at) <= expired_until(as_of))
        )
        return _of(stmt, instance_ids)

    return query


def expire(
    session: Session,
    rows: Sequence[Any],
    *,
    as_of: datetime,
    now: datetime,
    grace_days: int,
) -> tuple[list[Any], int]:
    """Mark expired those of ``rows`` (from :func:`past_expiry`) still active and past
    expiry, and queue each one's "expired" notice unless its grace period is already
    over; returns the rows expired and the number of notices queued."""
    by_id = {r.id: r for r in rows}
    # Set-based, and conditional: an instance renewed since the scan stays active.
    ids = session.execute(
        update(Instance)
        .where(
            col(Instance.id).in_(list(by_id)),
            col(Instance.state) == ACTIVE,
            col(Instance.expires_at) <= expired_until(as_of),
        )
        .values(state=EXPIRED)
        .returning(col(Instance.id))
    ).scalars()
    expired = [by_id[i] for i in ids]
    notices: list[dict[str, Any]] = []
    for r in expired:
        if as_of >= release_at(r.expires_at, grace_days):
            # Found only after its grace period: the release comes in the same run and
            # its notice tells the customer; "renew before <a past date>" would not.
            continue
        notices += Expired.to(
            row_addressee(r),
            expires_at=r.expires_at,
            release_at=release_at(r.expires_at, grace_days),
            as_of=as_of,
        ).rows(now)
    return expired, insert_notices(session, notices)


def release_warning_due(
    as_of: datetime, grace_days: int, instance_ids: list[str] | None = None
) -> Query:
    """Expired instances in the 24 h before their release, not yet warned."""
    after, until = release_warning_window(as_of, grace_days)
    warned = exists().where(
        and_(
            col(Notification.instance_id) == Instance.id,
            col(Notification.kind) == ReleaseWarning.kind,
            col(Notification.ref_at) == Instance.expires_at,
        )
    )

    def query() -> AnySelect:
        stmt = (
            select(*ADDRESSEE_COLUMNS)
            .join(Account, col(Account.id) == Instance.account_id)
            .where(
                col(Instance.state) == EXPIRED,
                col(Instance.expires_at) > after,
                col(Instance.expires_at) <= until,
                ~warned,
                # A backfill never warns of a release that already happened.
                ~overtaken_in_ledger(ReleaseWarning.kind, None, Instance.id, Instance.expires_at),
            )
        )
        return _of(stmt, instance_ids)

    return query


def queue_release_warnings(
    session: Session, rows: Sequence[Any], *, as_of: datetime, now: datetime, grace_days: int
) -> int:
    """Queue the last warning for each of ``rows`` (from :func:`release_warning_due`),
    speaking as of ``as_of``; returns how many notices were new."""
    notices: list[dict[str, Any]] = []
    for r in rows:
        notices += ReleaseWarning.to(
            row_addressee(r),
            expires_at=r.expires_at,
            release_at=release_at(r.expires_at, grace_days),
            as_of=as_of,
        ).rows(now)
    return insert_notices(session, notices)
