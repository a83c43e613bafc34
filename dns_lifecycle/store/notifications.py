"""The notification ledger: insert once, claim, mark.

A row is written in the same transaction as the decision it reports; the unique
``key`` makes a second insert of the same notice a no-op, whatever runs race. Delivery
claims rows with a lease so that two runs never send the same row at once, sends, and
marks each row with its outcome. None of these functions commit: the caller does.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, and_, bindparam, exists, false, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlmodel import Session, col

from dns_lifecycle.channels import DeliveryResult
from dns_lifecycle.core.db import NO_FLUSH_WAIT
from dns_lifecycle.lifecycle.expiry import release_at
from dns_lifecycle.lifecycle.notices import RenewalFailed, parse_instant
from dns_lifecycle.lifecycle.notices.keys import renewal_failed_order_and_day
from dns_lifecycle.lifecycle.reminders import (
    EXPIRY_STAGES,
    failure_overtaken,
    later_than,
    overtaken,
)
from dns_lifecycle.store import rows_changed
from models import Account, Instance, Notification

TABLE = Notification.__table__  # type: ignore[attr-defined]


def insert_ignoring_duplicates(session: Session, table, rows: Sequence[dict[str, Any]], key: str):
    """INSERT rows, skipping those whose ``key`` column already exists; returns the new ids.

    ON CONFLICT DO NOTHING rather than check-then-insert: only the database can tell
    two concurrent runs apart.
    """
    if not rows:
        return []
    dialect = session.get_bind().dialect.name
    builder = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = builder(table).on_conflict_do_nothing(index_elements=[key]).returning(table.c.id)
    return list(session.execute(stmt, list(rows)).scalars())


def insert_notices(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Add notices to the ledger; returns how many were new."""
    return len(insert_ignoring_duplicates(session, TABLE, rows, "key"))


@dataclass(frozen=True)
class PendingFilter:
    kinds: tuple[str, ...] | None = None
    instance_ids: tuple[str, ...] | None = None
    created_since: datetime | None = None


def _filter_clauses(filt: PendingFilter) -> list:
    clauses = []
    if filt.kinds:
        clauses.append(TABLE.c.kind.in_(filt.kinds))
    if filt.instance_ids:
        clauses.append(TABLE.c.instance_id.in_(filt.instance_ids))
    if filt.created_since:
        clauses.append(TABLE.c.created_at >= filt.created_since)
    return clauses


def claim_pending(
    session: Session,
    *,
    token: str,
    now: datetime,
    lease_until: datetime,
    after_id: int,
    limit: int,
    filt: PendingFilter = PendingFilter(),
) -> list[int]:
    """Claim up to ``limit`` pending rows with id > ``after_id``; returns their ids.

    The claimable condition is repeated in the outer WHERE so that, on PostgreSQL, a
    run that waited on another's row lock re-checks it and skips rows just claimed.
    """
    claimable = and_(
        TABLE.c.state == "pending",
        or_(TABLE.c.claimed_until.is_(None), TABLE.c.claimed_until < now),
    )
    candidates = (
        select(TABLE.c.id)
        .where(claimable, TABLE.c.id > after_id, *_filter_clauses(filt))
        .order_by(TABLE.c.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    ids = list(session.execute(candidates).scalars())
    if not ids:
        return []
    session.execute(
        update(TABLE)
        .where(TABLE.c.id.in_(ids), claimable)
        .values(claim_token=token, claimed_until=lease_until)
    )
    return list(
        session.execute(
            select(TABLE.c.id).where(TABLE.c.claim_token == token, TABLE.c.id.in_(ids))
        ).scalars()
    )


def held_by_other_runs(
    session: Session, *, token: str, now: datetime, filt: PendingFilter = PendingFilter()
) -> tuple[int, datetime | None]:
    """Pending rows matching ``filt`` claimed by another run whose lease is not over:
    how many, and when the last lease ends."""
    count, until = session.execute(
        select(func.count(), func.max(TABLE.c.claimed_until)).where(
            TABLE.c.state == "pending",
            TABLE.c.claimed_until >= now,
            or_(TABLE.c.claim_token.is_(None), TABLE.c.claim_token != token),
            *_filter_clauses(filt),
        )
    ).one()
    return count, until


def let_go(session: Session, *, token: str, keep: Iterable[int] = ()) -> int:
    """End the claims of the run ``token`` on rows still pending, except ``keep`` (rows
    whose fate is unknown: handed to a sender that ended before answering); returns how
    many. The next run may send them at once instead of waiting for the lease."""
    stmt = (
        update(TABLE)
        .where(TABLE.c.claim_token == token, TABLE.c.state == "pending")
        .values(claim_token=None, claimed_until=None)
    )
    kept = sorted(set(keep))
    if kept:
        stmt = stmt.where(TABLE.c.id.not_in(kept))
    return rows_changed(session.execute(stmt))


@dataclass(frozen=True)
class Outgoing:
    """A claimed ledger row with the address it goes to."""

    id: int
    key: str
    channel: str
    kind: str
    context: dict[str, Any]
    email: str
    phone: str
    created_at: datetime  # what a context without as_of speaks from


def load_outgoing(session: Session, ids: Iterable[int]) -> list[Outgoing]:
    rows = session.execute(
        select(
            TABLE.c.id,
            TABLE.c.key,
            TABLE.c.channel,
            TABLE.c.kind,
            TABLE.c.context,
            col(Account.email),
            col(Account.phone),
            TABLE.c.created_at,
        )
        .join(Account, Account.id == TABLE.c.account_id)
        .where(TABLE.c.id.in_(list(ids)))
        .order_by(TABLE.c.id)
    )
    return [Outgoing(*row) for row in rows]


def mark_results(
    session: Session, results: Iterable[DeliveryResult], ids_by_key: dict[str, int], now: datetime
) -> None:
    """Record outcomes: sent, failed (permanent) or back to pending (transient)."""
    conn = session.connection()
    for sql, params in _mark_params(conn.dialect, results, ids_by_key, now):
        conn.exec_driver_sql(sql, params)


class OutcomeWriter:
    """Records outcomes on a driver connection of its own, one short transaction per
    group, without a session: called for every few replies while a batch is delivered,
    where a session's own cost would be four times the writes' (and a sizeable part of
    delivering). Not for a sandbox database: its writes would escape the sandbox."""

    def __init__(self, engine: Engine) -> None:
        self._dialect = engine.dialect
        self._raw = engine.raw_connection()

    def write(
        self, results: Iterable[DeliveryResult], ids_by_key: dict[str, int], now: datetime
    ) -> None:
        cursor = self._raw.cursor()
        try:
            if self._dialect.name == "sqlite":
                # The engine's connections leave transactions to us (see core.db).
                cursor.execute("BEGIN IMMEDIATE")
            else:
                # A crash of this process loses no committed mark; only a crash of the
                # database server could lose the last few, whose messages would then
                # be sent again (with the same Message-ID).
                cursor.execute(NO_FLUSH_WAIT)
            for sql, params in _mark_params(self._dialect, results, ids_by_key, now):
                cursor.executemany(sql, params)
            self._raw.commit()
        except BaseException:
            self._raw.rollback()
            raise
        finally:
            cursor.close()

    def close(self) -> None:
        self._raw.close()


def _mark_params(
    dialect: Dialect, results: Iterable[DeliveryResult], ids_by_key: dict[str, int], now: datetime
) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """(statement, parameters) per outcome, with statements written once (``_MARK``)."""
    sent, failed, retry = [], [], []
    for result in results:
        row_id = ids_by_key[result.key]
        error = (result.error or "")[:1000] or None
        if result.outcome == "sent":
            sent.append((row_id,))
        elif result.outcome == "permanent":
            failed.append((error, row_id))
        else:
            retry.append((error, row_id))
    statements = _mark_statements(dialect.name, dialect.paramstyle)
    work = []
    if sent:
        # The timestamp as the column type stores it (SQLite: naive UTC text).
        stamp: Any = now.astimezone(UTC)
        if dialect.name == "sqlite":
            stamp = stamp.strftime("%Y-%m-%d %H:%M:%S.%f")
        work.append((statements["sent"], [(stamp, *row) for row in sent]))
    if failed:
        work.append((statements["failed"], failed))
    if retry:
        work.append((statements["pending"], retry))
    return work


@functools.cache
def _mark_statements(dialect: str, paramstyle: str) -> dict[str, str]:
    mark = "?" if paramstyle == "qmark" else "%s"
    done = f"attempts = attempts + 1, claim_token = NULL, claimed_until = NULL WHERE id = {mark}"
    table = TABLE.name
    return {
        "sent": f"UPDATE {table} SET state = 'sent', sent_at = {mark}, error = NULL, {done}",
        "failed": f"UPDATE {table} SET state = 'failed', error = {mark}, {done}",
        "pending": f"UPDATE {table} SET state = 'pending', error = {mark}, {done}",
    }


def requeue_failed(session: Session, *, since: datetime, kinds: Sequence[str] | None) -> int:
    """Put failed notices created since ``since`` (of ``kinds``, or all) back to pending,
    keeping their keys; returns how many."""
    stmt = (
        update(TABLE)
        .where(TABLE.c.state == "failed", TABLE.c.created_at >= since)
        .values(state="pending", claim_token=None, claimed_until=None)
    )
    if kinds:
        stmt = stmt.where(TABLE.c.kind.in_(list(kinds)))
    # Session.execute is typed to return a Result; an UPDATE's is a CursorResult.
    return rows_changed(session.execute(stmt))


# --- overtaken notices --------------------------------------------------------------------


def overtaken_in_ledger(kind: str, offset_days: int | None, instance_id, expires_at):
    """SQL: the ledger holds a notice that overtakes a ``kind`` notice for the instance
    ``instance_id`` and expiry ``expires_at`` (columns or values), by
    :func:`~dns_lifecycle.lifecycle.reminders.later_than`. Queueing adds ``~`` of it."""
    later = later_than(kind, offset_days)
    if later is None:
        raise ValueError(f"notice kind {kind!r} is not about an expiry")
    which = [TABLE.c.kind.in_(later.kinds)] if later.kinds else []
    if later.reminder_offset_below is not None:
        which.append(
            and_(TABLE.c.kind == "reminder", TABLE.c.offset_days < later.reminder_offset_below)
        )
    if not which:
        return false()  # nothing comes after a release
    return exists().where(
        TABLE.c.instance_id == instance_id,
        TABLE.c.ref_at == expires_at,
        TABLE.c.state != "skipped",
        or_(*which),
    )


def skip_overtaken(
    session: Session, ids: Sequence[int], *, as_of: datetime, grace_days: int
) -> dict[int, str]:
    """Mark the rows among ``ids`` that have been overtaken (see
    :func:`~dns_lifecycle.lifecycle.reminders.overtaken` and
    :func:`~dns_lifecycle.lifecycle.reminders.failure_overtaken`) as ``skipped``, with
    the reason in ``error``, instead of sending them; returns {id: reason}."""
    if not ids:
        return {}
    stale = _expiry_notices_overtaken(session, ids, as_of=as_of, grace_days=grace_days)
    stale |= _failure_notices_overtaken(session, ids, as_of=as_of)
    if stale:
        session.connection().execute(
            update(TABLE)
            .where(TABLE.c.id == bindparam("b_id"))
            .values(
                state="skipped",
                error=bindparam("b_error"),
                sent_at=None,
                claim_token=None,
                claimed_until=None,
            ),
            [{"b_id": i, "b_error": reason[:1000]} for i, reason in stale.items()],
        )
    return stale


def _failure_notices_overtaken(
    session: Session, ids: Sequence[int], *, as_of: datetime
) -> dict[int, str]:
    """{id: reason} of the "renewal failed" rows among ``ids`` no longer to be sent."""
    rows = session.execute(
        select(TABLE.c.id, TABLE.c.key, TABLE.c.context, col(Instance.expires_at))
        .join(Instance, col(Instance.id) == TABLE.c.instance_id)
        .where(TABLE.c.id.in_(list(ids)), TABLE.c.kind == RenewalFailed.kind)
    ).all()
    if not rows:
        return {}
    latest: dict[str, str] = {}
    for (key,) in session.execute(
        select(TABLE.c.key).where(
            TABLE.c.instance_id.in_(
                select(TABLE.c.instance_id).where(TABLE.c.id.in_([r.id for r in rows]))
            ),
            TABLE.c.kind == RenewalFailed.kind,
            TABLE.c.state != "skipped",
        )
    ):
        order, day = renewal_failed_order_and_day(key)
        latest[order] = max(day, latest.get(order, ""))
    stale: dict[int, str] = {}
    for r in rows:
        order, day = renewal_failed_order_and_day(r.key)
        reason = failure_overtaken(
            told_expiry=parse_instant(r.context["expires_at"]),
            expires_at=r.expires_at,
            as_of=as_of,
            day=day,
            latest_day=latest.get(order, day),
        )
        if reason is not None:
            stale[r.id] = reason
    return stale


def _expiry_notices_overtaken(
    session: Session, ids: Sequence[int], *, as_of: datetime, grace_days: int
) -> dict[int, str]:
    """{id: reason} of the rows among ``ids`` about an expiry that are overtaken."""
    rows = session.execute(
        select(
            TABLE.c.id,
            TABLE.c.instance_id,
            TABLE.c.kind,
            TABLE.c.offset_days,
            TABLE.c.ref_at,
            col(Instance.expires_at),
        )
        .join(Instance, col(Instance.id) == TABLE.c.instance_id)
        .where(TABLE.c.id.in_(list(ids)), TABLE.c.kind.in_(EXPIRY_STAGES))
    ).all()
    if not rows:
        return {}
    ledger: dict[tuple[str, datetime], list[tuple[str, int | None]]] = {}
    for instance_id, ref_at, kind, offset_days in session.execute(
        select(TABLE.c.instance_id, TABLE.c.ref_at, TABLE.c.kind, TABLE.c.offset_days).where(
            TABLE.c.instance_id.in_(sorted({r.instance_id for r in rows})),
            TABLE.c.kind.in_(EXPIRY_STAGES),
            TABLE.c.state != "skipped",
        )
    ):
        ledger.setdefault((instance_id, ref_at), []).append((kind, offset_days))
    stale: dict[int, str] = {}
    for r in rows:
        reason = overtaken(
            r.kind,
            r.offset_days,
            r.ref_at,
            ledger=ledger.get((r.instance_id, r.ref_at), []),
            expires_at=r.expires_at,
            as_of=as_of,
            release_at=release_at(r.ref_at, grace_days) if r.ref_at else as_of,
        )
        if reason is not None:
            stale[r.id] = reason
    return stale
