"""A synthetic fleet: editions, clusters, accounts, instances, domains and records.

Used to try the lifecycle at production scale (a million instances) and to give a
demonstration database something to show. Rows are generated as tuples of the values
the tables store and written by the driver itself, in one transaction: ``executemany``
on SQLite (foreign-key checks and fsyncs off for the load), ``COPY`` on PostgreSQL, with
the tables' secondary indexes dropped before and built again after. Building ORM
objects, or even Core inserts of dictionaries, costs several times the database's own
work at this size.

The rows are generated in ``seed_rows`` and written by ``bulk_load.BulkLoad``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from sqlalchemy import func, select
from sqlmodel import col

from dns_lifecycle.admin.bulk_load import BulkLoad
from dns_lifecycle.admin.seed_rows import (
    ACCOUNT_COLUMNS,
    DOMAIN_COLUMNS,
    INSTANCE_COLUMNS,
    RECORD_COLUMNS,
    _accounts,
    _ensure_catalog,
    _instance_chunks,
    account_id,
)
from dns_lifecycle.core.db import Database
from dns_lifecycle.core.errors import InputError
from models import Account, Domain, Instance, Record

# (accounts, instances, domains, records): one chunk of rows to write, in that order.
Rows = list[tuple[Any, ...]]
Part = tuple[Rows, Rows, Rows, Rows]


def _parts(plan: dict[str, Any]) -> Iterator[Part]:
    """The rows ``plan`` describes (the keyword arguments of :func:`_load`), in chunks."""
    chunk = plan["chunk"]
    accounts = _accounts(plan["seed"], plan["new_accounts"])
    zones: list[str] = list(plan.get("zones", ()))
    while batch := list(islice(accounts, chunk)):
        zones.extend(row[5] for row in batch)  # ACCOUNT_COLUMNS: timezone
        yield batch, [], [], []
    for part in _instance_chunks(
        plan["seed"],
        plan["instances"],
        zones,
        plan["as_of"],
        chunk,
        first=plan["first"],
        first_domain_id=plan["first_domain_id"],
        first_record_id=plan["first_record_id"],
    ):
        yield [], part.instances, part.domains, part.records


def _load(
    db: Database, plan: dict[str, Any], progress: Callable[[int, int], None] | None
) -> dict[str, int]:
    """Generate and write the rows of ``plan`` in one bulk load; returns the counts."""
    counts = {"account": plan["new_accounts"], "instance": 0, "domain": 0, "record": 0}
    with BulkLoad(db) as load:
        for accounts, instances, domains, records in _parts(plan):
            load.write("account", ACCOUNT_COLUMNS, accounts)
            load.write("instance", INSTANCE_COLUMNS, instances)
            load.write("domain", DOMAIN_COLUMNS, domains)
            load.write("record", RECORD_COLUMNS, records)
            if instances:
                counts["instance"] += len(instances)
                counts["domain"] += len(domains)
                counts["record"] += len(records)
                if progress is not None:
                    progress(counts["instance"], plan["instances"])
    return counts


def _check_arguments(instances: int, chunk: int, as_of: datetime) -> None:
    if instances < 1:
        raise InputError(f"instances={instances}: give a number of instances of 1 or more")
    if chunk < 1:
        raise InputError(f"chunk={chunk}: give a chunk size of 1 or more")
    if as_of.tzinfo is None:
        raise InputError(f"as_of={as_of.isoformat()} has no time zone: give an aware datetime")


def seed_fleet(
    db: Database,
    instances: int,
    seed: int = 0,
    *,
    as_of: datetime,
    progress: Callable[[int, int], None] | None = None,
    chunk: int = 10_000,
) -> dict[str, int]:
    """Fill an empty database with a synthetic fleet of ``instances`` instances.

    Args:
        db: the database; it must hold no accounts and no instances yet.
        instances: how many instances to create (accounts: a third of that, at least 1).
        seed: the same seed (with the same other arguments) gives the same rows.
        as_of: the moment the fleet is seeded for; expiries are placed around it.
        progress: called as ``progress(done, total)`` instances after each chunk.
        chunk: instances (or accounts) written per batch; the whole fleet is one
            transaction.

    Returns:
        The number of rows created per table.
    """
    _check_arguments(instances, chunk, as_of)
    with db.engine.begin() as conn:
        for table, model in (("instances", Instance), ("accounts", Account)):
            existing = conn.execute(select(func.count()).select_from(model)).scalar_one()
            if existing:
                raise InputError(
                    f"database already has {existing} {table}: seeding would mix two fleets; "
                    "use an empty database"
                )
        counts = _ensure_catalog(conn)
    n_accounts = max(1, instances // 3)
    plan = {
        "seed": seed,
        "new_accounts": n_accounts,
        "instances": instances,
        "as_of": as_of.astimezone(UTC),
        "chunk": chunk,
        "first": 0,
        "first_domain_id": 1,
        "first_record_id": 1,
    }
    counts.update(_load(db, plan, progress))
    return counts


def extend_fleet(
    db: Database,
    instances: int,
    seed: int = 0,
    *,
    as_of: datetime,
    progress: Callable[[int, int], None] | None = None,
    chunk: int = 10_000,
) -> dict[str, int]:
    """Add ``instances`` instances (with domains and records) to a seeded fleet's
    accounts, numbered after the instances already there; expiries lie around
    ``as_of`` as in :func:`seed_fleet`.

    Returns:
        The number of rows created per table.
    """
    _check_arguments(instances, chunk, as_of)
    with db.engine.begin() as conn:
        have = conn.execute(select(func.count()).select_from(Instance)).scalar_one()
        zone_of_account = dict(conn.execute(select(col(Account.id), col(Account.timezone))).all())
        last_domain = conn.execute(select(func.max(Domain.id))).scalar_one() or 0
        last_record = conn.execute(select(func.max(Record.id))).scalar_one() or 0
    zones = [zone_of_account.get(account_id(n)) for n in range(len(zone_of_account))]
    if not zones or None in zones:
        raise InputError(
            "the database's accounts are not those of a seeded fleet (acct-0000001 on): "
            "extend a fleet made by seed_fleet"
        )
    plan = {
        "seed": seed,
        "new_accounts": 0,
        "zones": zones,
        "instances": instances,
        "as_of": as_of.astimezone(UTC),
        "chunk": chunk,
        "first": have,
        "first_domain_id": last_domain + 1,
        "first_record_id": last_record + 1,
    }
    return _load(db, plan, progress)
