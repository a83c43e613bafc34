"""The embedded cluster: a zone is its domain's ``record`` rows with the cluster's code.

Each call is its own short transaction on the project's database; on PostgreSQL its
commit does not wait for the disk (``core.db.commit_without_flush_wait``): a zone write
lost with the database server is one whose stage was not recorded yet, so the next run
writes it again, and the stage's record, which waits, makes the zone write durable
first. The apex NS records
are implied by the cluster's name servers, so they are neither stored nor read. A row
holds a record's type, host, text and TTL: disabled records and record-set comments
are not kept here, and a TXT record whose strings its text cannot give back is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, ScalarSelect, Select, delete, insert, select
from sqlmodel import col

from dns_lifecycle.channels.clusters import ClusterConfig, WriteLock
from dns_lifecycle.core.db import Database, commit_without_flush_wait
from dns_lifecycle.core.errors import ZoneFileError
from dns_lifecycle.lifecycle.zonefile import Rr
from models import Domain, Record

if TYPE_CHECKING:
    from dns_lifecycle.channels.clusters.breaker import Breaker
    from dns_lifecycle.core.settings import Settings

RECORDS = Record.__table__  # type: ignore[attr-defined]


def open_cluster(
    config: ClusterConfig,
    settings: Settings,
    db: Database,
    write_lock: WriteLock | None,
    breaker: Breaker | None,
) -> DatabaseCluster:
    """The backend as the cluster registry builds it: writes are transactions of the
    project's database, which needs neither a write lock nor a breaker."""
    return DatabaseCluster(config, db)


class DatabaseCluster:
    def __init__(self, config: ClusterConfig, db: Database) -> None:
        self.config = config
        self.db = db

    # Each call looks its domain up in the statement that reads or writes the records:
    # on PostgreSQL every statement is a round trip to the server, which on a release day
    # of thousands of domains costs more than the statements' own work.

    def _domain(self, zone: str) -> ScalarSelect[int]:
        return select(col(Domain.id)).where(col(Domain.name) == zone).scalar_subquery()

    def _mine(self) -> ColumnElement[bool]:
        return RECORDS.c.cluster_code == self.config.code

    def read_zone(self, zone: str) -> list[Rr] | None:
        with self.db.session() as session:
            rows = session.execute(self.reading(zone)).all()
        if not rows:
            return None
        return [Rr(*r[1:]) for r in rows if r[1] is not None]

    def reading(self, zone: str) -> Select[tuple[int, str, str, str, int]]:
        """The domain's row with each of its records here, or once with no record: by
        the domain's unique name and the records' domain index."""
        return (
            select(col(Domain.id), RECORDS.c.type, RECORDS.c.host, RECORDS.c.value, RECORDS.c.ttl)
            .select_from(Domain)
            .outerjoin(RECORDS, (RECORDS.c.domain_id == col(Domain.id)) & self._mine())
            .where(col(Domain.name) == zone)
            .order_by(RECORDS.c.id)
        )

    def create_zone(self, zone: str, records: list[Rr], ns_ttl: int) -> bool:
        quoted = next((r for r in records if r.quoted and not r.disabled), None)
        if quoted is not None:
            raise ZoneFileError(
                f"domain {zone}: the {quoted.type} record of {quoted.host} holds the strings "
                f"{quoted.value[:60]}, which cluster {self.config.code} (a database cluster) "
                "cannot keep apart: move the zone to a powerdns cluster, then resolve this ticket"
            )
        records = [r for r in records if not r.disabled]
        with self.db.session() as session:
            here = select(RECORDS.c.id).where(RECORDS.c.domain_id == col(Domain.id), self._mine())
            found = session.execute(
                select(col(Domain.id), here.exists()).where(col(Domain.name) == zone)
            ).first()
            if found is None or found[1]:
                return False
            domain_id = found[0]
            if records:
                commit_without_flush_wait(session)
                session.execute(
                    insert(RECORDS),
                    [
                        {
                            "domain_id": domain_id,
                            "cluster_code": self.config.code,
                            "type": r.type,
                            "host": r.host,
                            "value": r.value,
                            "ttl": r.ttl,
                        }
                        for r in records
                    ],
                )
            session.commit()
        return True

    def replace_apex_ns(self, zone: str, nameservers: list[str], ttl: int) -> None:
        return None  # apex NS are implied by the cluster, not stored

    def delete_zone(self, zone: str) -> bool:
        with self.db.session() as session:
            commit_without_flush_wait(session)
            # On the session's connection: a Core DELETE's result there has its row count.
            deleted = (
                session.connection()
                .execute(
                    delete(RECORDS).where(RECORDS.c.domain_id == self._domain(zone), self._mine())
                )
                .rowcount
            )
            session.commit()
        return bool(deleted)

    def flush(self, zone: str) -> None:
        return None  # nothing is cached

    def close(self) -> None:
        return None
