"""Fixtures of the live-DNS tests: a paid and a free PowerDNS for the module, and a
database whose clusters point at them. Skipped only when PowerDNS is not installed."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from dns_lifecycle.core.db import Database
from models import Cluster
from tests.conftest import make_settings
from tests.factories import make_catalog
from tests.live_dns.servers import PDNS, SCHEMA, PowerDns, powerdns

if PDNS is None or SCHEMA is None:
    # CI installs them (.ci/run): there a missing server is a failure, not a skip.
    missing = "pdns_server is not installed (Debian packages pdns-server and pdns-backend-sqlite3)"
    if os.environ.get("CI"):
        pytest.fail(missing, pytrace=False)
    pytest.skip(missing, allow_module_level=True)


@pytest.fixture(scope="package")
def pdns_paid(tmp_path_factory) -> Iterator[PowerDns]:
    server = powerdns(tmp_path_factory.mktemp("paid"))
    yield server
    server.stop()


@pytest.fixture(scope="package")
def pdns_free(tmp_path_factory) -> Iterator[PowerDns]:
    server = powerdns(tmp_path_factory.mktemp("free"))
    yield server
    server.stop()


def point_clusters(
    db: Database, paid: PowerDns, free: PowerDns, free_api: str | None = None
) -> None:
    """Make paid-1 and free live clusters on these servers."""
    with db.session() as s:
        make_catalog(s)
        for code, server, api in (("paid-1", paid, None), ("free", free, free_api)):
            c = s.get(Cluster, code)
            c.backend = "powerdns"
            c.options = {"api_url": api or server.api_url}
            c.nameserver_addresses = [server.dns_address]
            s.add(c)
        s.commit()


@pytest.fixture
def live_settings(tmp_path, database_url, pdns_paid, pdns_free):
    return make_settings(
        tmp_path,
        database_url,
        cluster_api_keys={"paid-1": pdns_paid.api_key, "free": pdns_free.api_key},
        cluster_timeout_seconds=2,
        dns_timeout_seconds=1,
        drain_hours=0,
    )


@pytest.fixture
def live_db(live_settings, pdns_paid, pdns_free) -> Iterator[Database]:
    database = Database(live_settings)
    point_clusters(database, pdns_paid, pdns_free)
    yield database
    database.dispose()
