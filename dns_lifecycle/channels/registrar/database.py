"""The embedded registrar: the delegation lives in ``domain.nameservers`` of our database.

It stands in for a registrar where there is none (local use, demos, tests): the lock is
read from the domain's stored EPP statuses, and a switch is written at once, in a short
transaction of its own, so it answers ``done`` as soon as it is asked.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from dns_lifecycle.channels.registrar import SwitchState, done_at_once
from dns_lifecycle.core.db import Database
from dns_lifecycle.core.errors import DomainLocked, RegistrarRefused
from dns_lifecycle.lifecycle.nameservers import lock_of
from dns_lifecycle.store.release import DOMAINS

if TYPE_CHECKING:
    from dns_lifecycle.core.settings import Settings

# Task ids of this backend: the prefix, then the domain's name (changes apply at once).
TASK_PREFIX = "database:"


class DatabaseRegistrar:
    """Delegations kept in ``domain.nameservers`` (see the module docstring)."""

    # A switch changes only this database: asking again after a crash changes nothing.
    external = False

    def __init__(self, database: Database) -> None:
        self._db = database

    def lock_status(self, domain: str) -> str | None:
        """The update lock among the domain's stored EPP statuses, or None."""
        with self._db.session() as session:
            statuses = session.execute(
                select(DOMAINS.c.epp_statuses).where(DOMAINS.c.name == domain)
            ).scalar_one_or_none()
        if statuses is None:
            raise _unknown(domain)
        return lock_of(statuses)

    def start_switch(
        self, domain: str, nameservers: list[str], *, asked_since: datetime | None = None
    ) -> str:
        """Write ``nameservers`` as the domain's delegation and commit; refuse a locked one.
        Nothing is queued, so ``asked_since`` needs no look-up."""
        # Table statements, not ORM ones: a release day switches thousands of domains.
        with self._db.session() as session:
            row = session.execute(
                select(DOMAINS.c.epp_statuses, DOMAINS.c.nameservers).where(
                    DOMAINS.c.name == domain
                )
            ).first()
            if row is None:
                raise _unknown(domain)
            statuses, current = row
            lock = lock_of(statuses)
            if lock is not None:
                raise DomainLocked(domain, lock, nameservers)
            if current != nameservers:
                session.execute(
                    update(DOMAINS)
                    .where(DOMAINS.c.name == domain)
                    .values(nameservers=list(nameservers))
                )
                session.commit()
        return TASK_PREFIX + domain

    def switch_state(self, task_id: str) -> SwitchState:
        """Done: a change is written when it is asked for."""
        return done_at_once(task_id, TASK_PREFIX, "embedded registrar")

    def close(self) -> None:
        """Nothing to release: sessions are closed after each call."""


def _unknown(domain: str) -> RegistrarRefused:
    return RegistrarRefused(
        f"domain {domain} is not in the database, so the embedded registrar cannot change "
        "it: import it with its instance first"
    )


def from_settings(settings: Settings, database: Database) -> DatabaseRegistrar:
    """The backend as the registry builds it."""
    return DatabaseRegistrar(database)
