"""Writing many rows into the fleet's tables in one transaction, through the driver:
``executemany`` on SQLite (foreign-key checks and fsyncs off for the load), ``COPY`` on
PostgreSQL, with the tables' secondary indexes dropped before and built again after."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from dns_lifecycle.admin.seed_rows import FLEET_TABLES
from dns_lifecycle.core.db import Database

Write = Callable[[str, Sequence[str], Sequence[tuple[Any, ...]]], None]


class BulkLoad:
    """One transaction that writes many rows into the fleet's tables, through the driver.

    Use as a context manager; ``write(table, columns, rows)`` appends rows, ``count``
    asks how many rows a table holds. The secondary indexes of ``FLEET_TABLES`` are
    dropped on entry and built again before the commit, once, which costs a fraction of
    keeping them up to date row by row. An error rolls everything back (indexes
    included: DDL is transactional on both databases), so a failed load leaves the
    database as it was.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self.postgres = db.dialect == "postgresql"
        self._indexes: list[tuple[str, str]] = []
        # The driver's own connection: sqlite3's, or psycopg's.
        self._conn: Any = None

    def __enter__(self) -> BulkLoad:
        if self.postgres:
            self._enter_postgres()
        else:
            self._enter_sqlite()
        for name, _ in self._indexes:
            self._execute(f'DROP INDEX "{name}"')
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                for _, create in self._indexes:
                    self._execute(create)
                self._finish(commit=True)
            else:
                self._finish(commit=False)
        finally:
            self._close()

    # --- SQLite: the pooled sqlite3 connection, in one BEGIN IMMEDIATE transaction.

    def _enter_sqlite(self) -> None:
        self._raw = self.db.engine.raw_connection()
        conn: sqlite3.Connection = self._raw.driver_connection  # type: ignore[assignment]
        self._conn = conn
        # Put back what the engine set on this pooled connection when done.
        self._restore = {
            name: conn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("foreign_keys", "synchronous", "cache_size")
        }
        # The generated rows reference only rows generated before them, so per-row
        # foreign-key checks would only slow the load; a crash during the load loses
        # the whole (uncommitted) transaction, so its fsyncs buy nothing either.
        conn.execute("PRAGMA foreign_keys=OFF")  # has no effect inside a transaction
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-262144")  # 256 MB, for the index builds
        conn.execute("BEGIN IMMEDIATE")
        tables = ", ".join(f"'{t}'" for t in FLEET_TABLES)
        self._indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            f"AND tbl_name IN ({tables}) ORDER BY name"
        ).fetchall()

    def _sqlite_write(self, table: str, columns: Sequence[str], rows) -> None:
        marks = ", ".join("?" * len(columns))
        self._conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    # --- PostgreSQL: COPY on the engine's connection, in one transaction.

    def _enter_postgres(self) -> None:
        self._sa = self.db.engine.connect()
        self._tx = self._sa.begin()
        self._conn = self._sa.connection.driver_connection  # a psycopg Connection
        # The timestamps are UTC text; COPY reads text without an offset in the
        # session's zone. The index builds get the memory they can use.
        self._execute("SET LOCAL TimeZone = 'UTC'")
        self._execute("SET LOCAL maintenance_work_mem = '256MB'")
        self._execute("SET LOCAL synchronous_commit = off")
        self._indexes = [
            tuple(row)
            for row in self._sa.exec_driver_sql(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i "
                "WHERE i.schemaname = current_schema() AND i.tablename = ANY(%(t)s) "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
                "WHERE c.conname = i.indexname AND c.connamespace = "
                "(SELECT oid FROM pg_namespace WHERE nspname = i.schemaname)) "
                "ORDER BY i.indexname",
                {"t": list(FLEET_TABLES)},
            )
        ]

    def _postgres_write(self, table: str, columns: Sequence[str], rows) -> None:
        with (
            self._conn.cursor() as cursor,
            cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)

    # --- both

    def write(self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if self.postgres:
            self._postgres_write(table, columns, rows)
        else:
            self._sqlite_write(table, columns, rows)

    def scalar(self, sql: str) -> Any:
        if self.postgres:
            return self._sa.exec_driver_sql(sql).scalar()
        return self._conn.execute(sql).fetchone()[0]

    def _execute(self, sql: str) -> None:
        if self.postgres:
            self._sa.exec_driver_sql(sql)
        else:
            self._conn.execute(sql)

    def _finish(self, *, commit: bool) -> None:
        if self.postgres:
            if commit:
                # The ids were given here, so the sequences never moved: move them
                # past the rows, or the next insert would collide with domain 1.
                for table in ("domain", "record"):
                    self._execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"COALESCE((SELECT max(id) FROM {table}), 0) + 1, false)"
                    )
                self._tx.commit()
            else:
                self._tx.rollback()
        elif self._conn.in_transaction:
            self._conn.execute("COMMIT" if commit else "ROLLBACK")

    def _close(self) -> None:
        if self.postgres:
            self._sa.close()
            return
        for name, value in self._restore.items():
            self._conn.execute(f"PRAGMA {name}={value}")
        self._raw.close()
