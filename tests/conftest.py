"""Shared fixtures: a migrated database per test, on SQLite and (when
``TEST_DATABASE_URL`` is set) on PostgreSQL; settings pointing at temporary folders."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from dns_lifecycle.core.db import Database, upgrade
from dns_lifecycle.core.settings import Settings

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")

BACKENDS = ["sqlite"] + (["postgresql"] if TEST_DATABASE_URL else [])


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory) -> Path:
    """One migrated SQLite file; each test gets a copy (faster than migrating again)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(Settings(database_url=f"sqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def _postgres_migrated() -> str:
    assert TEST_DATABASE_URL, "TEST_DATABASE_URL is not set"
    db = Database(Settings(database_url=TEST_DATABASE_URL))
    try:
        with db.engine.begin() as conn:
            # A clean schema each session: earlier runs may have left any state behind.
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        db.dispose()
    upgrade(Settings(database_url=TEST_DATABASE_URL))
    return TEST_DATABASE_URL


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
