"""One run at a time for work that acts on the world: a turn is a lock that the database
server or the operating system lets go of when the process holding it ends, however it
ends (SIGKILL included), so a killed run never leaves it held and a rerun can start at
once.

Overlapping runs of the same step are otherwise each correct stage by stage, but a
check made by one run can be overtaken by another's act on the same thing: a run that
compares the paid copy just as the other deletes it would see it "changed". Taking turns
rules that out.

On PostgreSQL a turn is a session advisory lock, on a connection of its own kept for
the turn (autocommit: no transaction stays open). On SQLite, whose runs share a
machine, it is ``flock`` on a file beside the database; an in-memory database has one
process and needs none. A turn is taken without waiting: a run that finds it held is
told so and leaves the work to the holder.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from dns_lifecycle.core.db import Database


@dataclass(frozen=True)
class Turn:
    """A named lock; ``shared`` turns with the same name can be held together, as the
    shards of one split run hold the whole release's turn beside their own."""

    name: str
    shared: bool = False


@contextmanager
def taking(db: Database, turns: list[Turn]) -> Iterator[bool]:
    """Take every turn of ``turns`` without waiting; yields whether all were taken (if
    not, none is held). All are let go of on leaving."""
    with ExitStack() as stack:
        if db.engine.dialect.name == "postgresql":
            taken = _advisory(stack, db, turns)
        else:
            taken = _flocks(stack, db, turns)
        yield taken


def _key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (advisory locks are keyed by bigint)."""
    return int.from_bytes(
        hashlib.sha256(f"dns-lifecycle:{name}".encode()).digest()[:8], "big", signed=True
    )


def _advisory(stack: ExitStack, db: Database, turns: list[Turn]) -> bool:
    conn = stack.enter_context(db.engine.connect().execution_options(isolation_level="AUTOCOMMIT"))
    # Leaving ends every lock of this session, taken or not, before the connection goes
    # back to the pool (closing a pooled connection does not end its session).
    stack.callback(conn.execute, text("SELECT pg_advisory_unlock_all()"))
    for turn in turns:
        fn = "pg_try_advisory_lock_shared" if turn.shared else "pg_try_advisory_lock"
        if not conn.execute(text(f"SELECT {fn}(:key)"), {"key": _key(turn.name)}).scalar():
            return False
    return True


def _flocks(stack: ExitStack, db: Database, turns: list[Turn]) -> bool:
    database = db.engine.url.database
    if not database or database == ":memory:":
        return True
    for turn in turns:
        path = Path(f"{database}.{turn.name.replace('/', '-')}.turn")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        stack.callback(os.close, fd)  # closing the file lets go of its lock
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if turn.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
    return True
