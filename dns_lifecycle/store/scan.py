"""Batched range scans over instances, the shape of every daily step.

Each step asks "instances in state S whose expiry lies in (after, until]". The
(state, expires_at) index answers that without reading the rest of the fleet, and
keyset pagination on (expires_at, id) hands out batches of rows that each live in
a short read transaction of their own, so a long run never holds a snapshot open.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, literal, select, tuple_
from sqlmodel import col

from dns_lifecycle.core.db import Database
from dns_lifecycle.lifecycle.notices import Addressee
from dns_lifecycle.lifecycle.sharding import Shard
from models import Account, Instance
from models.types import UTCDateTime

# A SELECT of any number of columns: each scan selects what its step needs.
AnySelect = Select[*tuple[Any, ...]]


def scan_batches(
    db: Database,
    query: Callable[[], AnySelect],
    *,
    batch_size: int,
    shard: Shard | None = None,
) -> Iterator[list[Any]]:
    """Yield lists of rows of ``query()`` (which must select Instance.expires_at and
    Instance.id, among others) in (expires_at, id) order, ``batch_size`` at a time;
    with a ``shard``, only that shard's rows (the due rows are few, so filtering them
    here is cheaper than a hash in SQL that no index can serve)."""
    last: tuple[datetime, str] | None = None
    while True:
        stmt = query().order_by(col(Instance.expires_at), col(Instance.id)).limit(batch_size)
        if last is not None:
            # Typed literals: the expiry must be bound through UTCDateTime like the column.
            after = tuple_(literal(last[0], UTCDateTime()), literal(last[1]))
            stmt = stmt.where(tuple_(col(Instance.expires_at), col(Instance.id)) > after)
        with db.session() as session:
            rows = list(session.execute(stmt))
            session.commit()
        if not rows:
            return
        last = (rows[-1].expires_at, rows[-1].id)
        mine = rows if shard is None else [r for r in rows if shard.owns(r.id)]
        if mine:
            yield mine
        if len(rows) < batch_size:
            return


def count_rows(db: Database, queries: list[Callable[[], AnySelect]]) -> int:
    """How many rows the given queries select, together (for a progress bar)."""
    with db.session() as session:
        return sum(
            session.execute(select(func.count()).select_from(q().subquery())).scalar_one()
            for q in queries
        )


# What a notice needs to know of an instance and its account, selected with it.
ADDRESSEE_COLUMNS = (
    col(Instance.id),
    col(Instance.expires_at),
    col(Instance.account_id),
    col(Instance.edition_code),
    col(Account.name),
    col(Account.locale),
    col(Account.timezone),
)


def row_addressee(row: Any) -> Addressee:
    """The addressee of a row that selected :data:`ADDRESSEE_COLUMNS`."""
    return Addressee(row.account_id, row.name, row.locale, row.timezone, row.id, row.edition_code)
