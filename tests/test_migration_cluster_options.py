"""The migration that gathers a cluster's backend columns into ``options`` keeps what
each cluster had, on SQLite and PostgreSQL, and its downgrade gives the columns back."""

from __future__ import annotations

import json

from alembic import command
from sqlalchemy import create_engine, text

from dns_lifecycle.core.db import alembic_config, normalise_url, upgrade
from dns_lifecycle.core.settings import Settings

CLUSTERS = [
    # code, kind, backend, api_url, server_id, catalog
    ("embedded", "paid", "database", None, "localhost", None),
    ("paid-live", "paid", "powerdns", "http://127.0.0.1:8081", "localhost", None),
    ("free", "free", "powerdns", "http://127.0.0.1:8082", "main", "catalog.free.example"),
]


def _rows(url: str, query: str) -> dict[str, tuple]:
    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            return {r[0]: tuple(r[1:]) for r in conn.execute(text(query))}
    finally:
        engine.dispose()


def _at_0009_with_clusters(url: str) -> None:
    command.downgrade(alembic_config(url), "0009")
    engine = create_engine(normalise_url(url))
    try:
        with engine.begin() as conn:
            for code, kind, backend, api_url, server_id, catalog in CLUSTERS:
                conn.execute(
                    text(
                        "INSERT INTO cluster (code, kind, nameservers, backend, api_url, "
                        "server_id, catalog) VALUES (:c, :k, '[]', :b, :u, :s, :cat)"
                    ),
                    {"c": code, "k": kind, "b": backend, "u": api_url, "s": server_id,
                     "cat": catalog},
                )  # fmt: skip
    finally:
        engine.dispose()


def test_each_clusters_columns_become_its_options(database_url):
    """A live cluster's api_url, server_id and catalog become its options; an embedded
    cluster's options are empty."""
    _at_0009_with_clusters(database_url)
    upgrade(Settings(database_url=database_url))
    rows = _rows(database_url, "SELECT code, backend, options FROM cluster")
    # SQLite hands JSON back as text, PostgreSQL as the object.
    options = {
        code: (backend, o if isinstance(o, dict) else json.loads(o))
        for code, (backend, o) in rows.items()
    }
    assert options == {
        "embedded": ("database", {}),
        "paid-live": ("powerdns", {"api_url": "http://127.0.0.1:8081", "server_id": "localhost"}),
        "free": (
            "powerdns",
            {
                "api_url": "http://127.0.0.1:8082",
                "server_id": "main",
                "catalog": "catalog.free.example",
            },
        ),
    }


def test_the_downgrade_gives_the_columns_back(database_url):
    """Downgraded after the migration, each cluster has the columns it had before."""
    _at_0009_with_clusters(database_url)
    upgrade(Settings(database_url=database_url))
    command.downgrade(alembic_config(database_url), "0009")
    try:
        rows = _rows(database_url, "SELECT code, api_url, server_id, catalog FROM cluster")
    finally:
        upgrade(Settings(database_url=database_url))
    assert rows == {code: (u, s, cat) for code, _, _, u, s, cat in CLUSTERS}
