"""Shared fixtures: a migrated database per test, on SQLite and (when
``TEST_DATABASE_URL`` is set) on PostgreSQL; settings pointing at temporary folders.

Under pytest-xdist each worker is a process of its own with its own session fixtures:
it gets its own PostgreSQL database (``TEST_DATABASE_URL``'s name + ``_gw0``...) and its
own ``PREFECT_HOME``; temporary folders are per worker already, ports are chosen free."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy import make_url, text

from dns_lifecycle.core.db import Database, upgrade
from dns_lifecycle.core.settings import Settings

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
# Set by pytest-xdist in each worker process ("gw0", "gw1"...); None in a plain run.
WORKER = os.environ.get("PYTEST_XDIST_WORKER")

BACKENDS = ["sqlite"] + (["postgresql"] if TEST_DATABASE_URL else [])


# Property tests. "ci" (the default) keeps each test's number of examples (Hypothesis's
# 100, or what the test's @settings names: fewer where one example is a whole run on a
# database) and drops the per-example deadline and the too-slow check, which measure how
# busy the machine is (two workers, other jobs), not the code; a failure prints the blob
# that replays it. "thorough" (HYPOTHESIS_PROFILE=thorough) tries 1,000 examples in each
# test that does not name its own number.
hypothesis_settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
hypothesis_settings.register_profile(
    "thorough", hypothesis_settings.get_profile("ci"), max_examples=1000
)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config) -> None:
    # Prefect reads PREFECT_HOME when it is first imported, which happens after this
    # (nothing imported above imports it): workers must not share its files.
    if WORKER and os.environ.get("PREFECT_HOME"):
        home = Path(os.environ["PREFECT_HOME"]) / WORKER
        home.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(home)


def pytest_collection_modifyitems(config, items) -> None:
    # Files marked slow(seconds) run first, the longest first: with xdist handing out
    # whole files (--dist loadfile), a long file handed out last would keep one worker
    # busy while the others have finished. The sort is stable: the rest keep their order.
    def seconds(item) -> float:
        mark = item.get_closest_marker("slow")
        return mark.args[0] if mark else 0

    items.sort(key=seconds, reverse=True)


def _worker_database(url: str) -> str:
    """``url`` itself in a plain run; under xdist, a database of this worker's own next
    to it (created when missing), since each worker drops and truncates its tables."""
    if not WORKER:
        return url
    base = make_url(url)
    own = base.set(database=f"{base.database}_{WORKER}")
    db = Database(Settings(database_url=url))
    try:
        # CREATE DATABASE cannot run inside a transaction.
        with db.engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": own.database}
            ).first()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{own.database}"'))
    finally:
        db.dispose()
    return own.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory) -> Path:
    """One migrated SQLite file; each test gets a copy (faster than migrating again)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(Settings(database_url=f"sqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def _postgres_migrated() -> str:
    assert TEST_DATABASE_URL, "TEST_DATABASE_URL is not set"
    url = _worker_database(TEST_DATABASE_URL)
    db = Database(Settings(database_url=url))
    try:
        with db.engine.begin() as conn:
            # A clean schema each session: earlier runs may have left any state behind.
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        db.dispose()
    upgrade(Settings(database_url=url))
    return url


def _truncate_postgres(url: str) -> None:
    db = Database(Settings(database_url=url))
    try:
        with db.engine.begin() as conn:
            tables = conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname='public' "
                    "AND tablename <> 'alembic_version'"
                )
            ).scalars()
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    finally:
        db.dispose()


def make_settings(tmp_path: Path, database_url: str, **overrides) -> Settings:
    values = {
        "database_url": database_url,
        "outbox_dir": tmp_path / "outbox",
        "email_backend": "memory",
        "sms_backend": "memory",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path) -> Iterator[str]:
    """The URL of an empty, migrated database of each backend under test."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copy(request.getfixturevalue("_sqlite_template"), path)
        yield f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("_postgres_migrated")
        _truncate_postgres(url)
        yield url


@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    return make_settings(tmp_path, database_url)


@pytest.fixture
def db(settings) -> Iterator[Database]:
    database = Database(settings)
    yield database
    database.dispose()


@pytest.fixture(autouse=True)
def _empty_memory_outboxes():
    from dns_lifecycle.channels.email import memory as email_memory
    from dns_lifecycle.channels.sms import memory as sms_memory

    for outbox in (email_memory.outbox, sms_memory.outbox):
        outbox.clear()
    yield
    for outbox in (email_memory.outbox, sms_memory.outbox):
        outbox.clear()


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect API for the whole session (it costs seconds to start)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    # Heartbeats (crash detection for worker-run flows) cost each in-process flow run
    # up to a second while their thread winds down.
    with (
        prefect_test_harness(server_startup_timeout=120),
        temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        yield


@pytest.fixture
def flow_env(settings, monkeypatch, prefect_harness) -> Settings:
    """Point the flows (which read settings from the environment) at this test's database
    and outbox, with in-memory channels; returns the same settings."""
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("DNSL_OUTBOX_DIR", str(settings.outbox_dir))
    monkeypatch.setenv("DNSL_EMAIL_BACKEND", settings.email_backend)
    monkeypatch.setenv("DNSL_SMS_BACKEND", settings.sms_backend)
    return settings
