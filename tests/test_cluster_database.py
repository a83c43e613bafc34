"""The embedded (database) cluster's zone writes: what they store, and on PostgreSQL
that their commits do not wait for the disk (core.db.commit_without_flush_wait)."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import event, text

from dns_lifecycle.channels.clusters import ClusterConfig
from dns_lifecycle.channels.clusters.database import DatabaseCluster
from dns_lifecycle.core.db import NO_FLUSH_WAIT
from dns_lifecycle.lifecycle.zonefile import Rr
from tests.factories import default_domains, make_instance

FREE = ClusterConfig(code="free", kind="free", nameservers=("ns1.free.example",))
RECORDS = [Rr("A", "@", "192.0.2.1", 600), Rr("MX", "@", "10 mail.example.com.", 600)]


@contextmanager
def statements(db):
    """The SQL the engine sends meanwhile, in order."""
    sent: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)


def _domain(db) -> str:
    with db.session() as s:
        make_instance(s, "inst-1", expires_at=datetime(2026, 12, 1, tzinfo=UTC))
        s.commit()
    return default_domains("inst-1")[0]["name"]


def test_a_zone_written_and_deleted_reads_back_as_written(db):
    """create_zone stores the records under the cluster's code; delete_zone removes them."""
    name = _domain(db)
    cluster = DatabaseCluster(FREE, db)
    assert cluster.create_zone(name, RECORDS, 3600) is True
    assert cluster.read_zone(name) == RECORDS
    assert cluster.delete_zone(name) is True
    assert cluster.read_zone(name) == []


def test_on_postgresql_zone_writes_commit_without_waiting_for_the_disk(db):
    """On PostgreSQL both writes set synchronous_commit off for their transaction, before
    writing; SQLite gets no such statement."""
    name = _domain(db)
    cluster = DatabaseCluster(FREE, db)
    with statements(db) as sent:
        cluster.create_zone(name, RECORDS, 3600)
        cluster.delete_zone(name)
    writes = [i for i, sql in enumerate(sent) if sql.startswith(("INSERT INTO record", "DELETE"))]
    waits = [i for i, sql in enumerate(sent) if sql == NO_FLUSH_WAIT]
    assert len(writes) == 2, sent
    if db.dialect == "postgresql":
        assert len(waits) == 2 and waits[0] < writes[0] < waits[1] < writes[1], sent
    else:
        assert waits == [], sent


def test_each_call_finds_its_domain_in_the_statement_that_reads_or_writes_records(db):
    """One statement reads a zone, one looks for the domain before a create, one deletes:
    the domain's id is not looked up in a round trip of its own."""
    name = _domain(db)
    cluster = DatabaseCluster(FREE, db)
    queries = []
    for call in (
        lambda: cluster.read_zone(name),
        lambda: cluster.create_zone(name, RECORDS, 3600),
        lambda: cluster.read_zone(name),
        lambda: cluster.delete_zone(name),
    ):
        with statements(db) as sent:
            call()
        # SQLite's BEGIN IMMEDIATE is no round trip: it runs in the process.
        kept = [sql for sql in sent if sql != NO_FLUSH_WAIT and not sql.startswith("BEGIN")]
        queries.append([sql.split()[0] for sql in kept])
    assert queries == [["SELECT"], ["SELECT", "INSERT"], ["SELECT"], ["DELETE"]], queries


def test_a_missing_domain_reads_as_none_and_is_neither_created_nor_deleted(db):
    _domain(db)
    cluster = DatabaseCluster(FREE, db)
    assert cluster.read_zone("absent.example.com") is None
    assert cluster.create_zone("absent.example.com", RECORDS, 3600) is False
    assert cluster.delete_zone("absent.example.com") is False


def test_a_second_create_of_a_zone_held_here_changes_nothing(db):
    name = _domain(db)
    cluster = DatabaseCluster(FREE, db)
    assert cluster.create_zone(name, RECORDS, 3600) is True
    assert cluster.create_zone(name, RECORDS[:1], 3600) is False
    assert cluster.read_zone(name) == RECORDS


def test_on_postgresql_a_zone_is_read_through_the_name_and_domain_indexes(db):
    """The read finds the domain by its unique name and the records by their domain
    index (no cast or function defeats either): the plan with sequential scans ruled out
    uses both, and gives the records back."""
    if db.dialect != "postgresql":
        return
    name = _domain(db)
    cluster = DatabaseCluster(FREE, db)
    cluster.create_zone(name, RECORDS, 3600)
    query = cluster.reading(name)
    with db.session() as s:
        s.execute(text("SET LOCAL enable_seqscan = off"))
        literal = query.compile(
            dialect=s.get_bind().dialect, compile_kwargs={"literal_binds": True}
        )
        plan = "\n".join(r[0] for r in s.connection().exec_driver_sql(f"EXPLAIN {literal}"))
        rows = s.execute(query).all()
    assert "domain_name_key" in plan and "ix_record_domain_id" in plan, plan
    assert [Rr(*r[1:]) for r in rows] == RECORDS
