"""Engine, sessions and schema migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, RootTransaction, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlmodel import Session, create_engine

from dns_lifecycle.core.errors import DatabaseNotReady
from dns_lifecycle.core.settings import Settings, shipped

MIGRATIONS_DIR = shipped("migrations")

# PostgreSQL: the transaction's COMMIT returns without waiting for its WAL to reach the
# disk (the wait is most of a short transaction's time). Only a crash of the database
# server, not of this process, can lose it, and any later commit that does wait makes
# it durable first (the WAL is flushed in order). For writes that a run redoes when
# they are missing: the next stage's record, committed as usual, seals them.
NO_FLUSH_WAIT = "SET LOCAL synchronous_commit = off"


def commit_without_flush_wait(session: Session) -> None:
    """Let ``session``'s current transaction commit without the flush wait (PostgreSQL;
    SQLite's WAL with synchronous=NORMAL never waits at a commit)."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection().exec_driver_sql(NO_FLUSH_WAIT)


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use the psycopg 3 driver for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _make_sqlite_folder(url: str) -> None:
    """SQLite creates the file but not its folder (var/ in a fresh clone)."""
    path = url.split("///", 1)[-1]
    if url.startswith("sqlite") and path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        _make_sqlite_folder(url)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # pragma: no cover - trivial
            # WAL lets the delivery step read while another run writes; foreign keys are
            # off by default in SQLite; busy_timeout makes concurrent writers wait.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        # pysqlite's own transaction handling defers BEGIN; take it over so that a
        # transaction starts with BEGIN IMMEDIATE and writers queue instead of failing.
        @event.listens_for(engine, "connect")
        def _no_pysqlite_begin(dbapi_connection, _record):  # pragma: no cover - trivial
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn):  # pragma: no cover - trivial
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (``dns-lifecycle db upgrade``).

    A database that cannot be created or reached raises ``DatabaseNotReady`` naming it
    and the setting to fix."""
    url = settings.database_url
    shown = safe_url(url)
    try:
        _make_sqlite_folder(url)
    except OSError as exc:
        raise DatabaseNotReady(
            f"cannot create the folder of the database {shown}: {exc.strerror or exc}; "
            "give DATABASE_URL a path in a folder that exists or can be made"
        ) from None
    try:
        command.upgrade(alembic_config(url), revision)
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError):
        raise DatabaseNotReady(_not_a_url(shown)) from None
    except sa_exc.DBAPIError as exc:
        raise DatabaseNotReady(_cannot_use(shown, exc)) from None


def _not_a_url(shown: str) -> str:
    return (
        f"DATABASE_URL {shown} is not a database URL this project can use: give "
        "sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
    )


def _cannot_use(shown: str, exc: sa_exc.DBAPIError) -> str:
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
    fix = (
        "that DATABASE_URL names a file you may write, in a folder you may write"
        if shown.startswith("sqlite")
        else "DATABASE_URL and that the server is running and the database exists"
    )
    return f"cannot use the database {shown}: {reason}; check {fix}"


def safe_url(url: str) -> str:
    """The database URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa_exc.ArgumentError:
        return "<a database URL that cannot be read>"


def check_ready(settings: Settings) -> None:
    """Raise ``DatabaseNotReady`` with the fix when the configured database cannot be
    reached, or its schema is not the one this code was written for (never migrated,
    or migrations added since). One connection and one small query."""
    url = settings.database_url
    shown = safe_url(url)
    if url.startswith("sqlite") and not url.split("///", 1)[-1].startswith(":memory:"):
        path = Path(url.split("///", 1)[-1])
        if not path.exists():
            raise DatabaseNotReady(
                f"database {shown} does not exist yet: run `dns-lifecycle db upgrade` to "
                "create it, or `./scripts/demo.sh` to create one with a sample fleet and "
                "run the day once"
            )
    try:
        engine = make_engine(url)
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError):
        raise DatabaseNotReady(_not_a_url(shown)) from None
    try:
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    except sa_exc.DBAPIError as exc:
        raise DatabaseNotReady(_cannot_use(shown, exc)) from None
    finally:
        engine.dispose()
    wanted = set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
    if current != wanted:
        state = "was never migrated" if not current else "has an older schema"
        raise DatabaseNotReady(
            f"database {shown} {state}: run `dns-lifecycle db upgrade` (it keeps the data)"
        )


class Database:
    """The engine of one settings object, and sessions on it."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.engine = make_engine(settings.database_url)
        self._sandbox: Connection | None = None
        self._sandbox_tx: RootTransaction | None = None

    @classmethod
    def sandbox(cls, settings: Settings) -> Database:
        """A database whose every session runs inside one transaction that is rolled
        back on :meth:`dispose`: a dry run executes the real code and keeps nothing.

        Sessions commit to savepoints, so each step sees what the steps before it
        would have done. The transaction holds its locks until the dry run ends (on
        SQLite, the write lock), so other writers wait for it.
        """
        db = cls(settings)
        db._sandbox = db.engine.connect()
        db._sandbox_tx = db._sandbox.begin()
        return db

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def in_sandbox(self) -> bool:
        """Whether everything written here is rolled back at the end (a dry run)."""
        return self._sandbox is not None

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction the caller commits; rolled back on error."""
        if self._sandbox is not None:
            session = Session(
                bind=self._sandbox,
                expire_on_commit=False,
                join_transaction_mode="create_savepoint",
            )
        else:
            session = Session(self.engine, expire_on_commit=False)
        with session:
            try:
                yield session
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        if self._sandbox is not None:
            if self._sandbox_tx is not None:
                self._sandbox_tx.rollback()
            self._sandbox.close()
            self._sandbox = None
        self.engine.dispose()
