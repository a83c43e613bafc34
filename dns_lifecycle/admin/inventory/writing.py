"""Writing a checked inventory: all of it in bulk statements, or nothing.

The caller owns the transaction: nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from dns_lifecycle.admin.inventory.batches import chunks
from dns_lifecycle.admin.inventory.checking import Inventory, validate_inventory
from dns_lifecycle.core.errors import InputError
from dns_lifecycle.core.settings import GRACE_DAYS
from models import (
    Account,
    Cluster,
    Domain,
    DomainRelease,
    Edition,
    Instance,
    Record,
    Ticket,
)
from models.domain_release import DomainReleaseBase

__all__ = ["import_inventory"]


def import_inventory(
    doc: Any,
    session: Session,
    *,
    now: datetime,
    grace_days: int = GRACE_DAYS,
    source: str | None = None,
) -> dict[str, int]:
    """Validate a document at the moment ``now`` and write it: all of it or, on any bad
    entry, nothing.

    Returns how many of each kind the document held. Does not commit: the caller owns
    the transaction. Raises ``InventoryInvalid`` listing every bad entry.
    """
    inventory = validate_inventory(doc, session, now=now, grace_days=grace_days, source=source)
    try:
        counts = _write(inventory, session)
    except IntegrityError as exc:
        # Validation saw a state that another transaction changed before the writes.
        raise InputError(
            "the database changed while the inventory was being imported "
            f"({type(exc.orig).__name__}); nothing was imported: import the file again"
        ) from None
    # Bulk statements bypass the identity map; objects the caller holds must reload.
    session.expire_all()
    return counts


def _upsert(
    session: Session,
    model: Any,
    rows: list[dict[str, Any]],
    existing: Iterable[str],
    key: str,
) -> None:
    existing = set(existing)
    new = [r for r in rows if r[key] not in existing]
    old = [r for r in rows if r[key] in existing]
    for chunk in chunks(new):
        session.execute(insert(model), chunk)
    for chunk in chunks(old):
        session.execute(update(model), chunk)


def _write(inventory: Inventory, session: Session) -> dict[str, int]:
    stored = inventory.stored
    _write_editions(session, inventory.editions, stored.edition_ranks)
    _upsert(session, Cluster, inventory.clusters, stored.cluster_kinds, "code")
    accounts = [
        r if "balance" in r or r["id"] in stored.account_ids else {**r, "balance": Decimal("0.00")}
        for r in inventory.accounts
    ]
    _upsert(session, Account, accounts, stored.account_ids, "id")
    instances = [
        r if "released_at" in r or r["id"] in stored.instance_ids else {**r, "released_at": None}
        for r in inventory.instances
    ]
    _upsert(session, Instance, instances, stored.instance_ids, "id")
    removed = _write_domains(session, inventory)
    _move_kept_records(session, inventory)
    counts = inventory.counts()
    counts["domains_removed"] = removed
    return counts


def _write_editions(
    session: Session, rows: list[dict[str, Any]], stored_ranks: dict[str, int]
) -> None:
    # Ranks are unique: when stored editions trade ranks, park the moving ones on
    # unused negative ranks first so no statement sees two editions on one rank.
    moving = [
        r["code"]
        for r in rows
        if r["code"] in stored_ranks and stored_ranks[r["code"]] != r["rank"]
    ]
    if moving:
        floor = min([0, *stored_ranks.values()])
        parked = [{"code": code, "rank": floor - 1 - n} for n, code in enumerate(moving)]
        for chunk in chunks(parked):
            session.execute(update(Edition), chunk)
    _upsert(session, Edition, rows, stored_ranks, "code")


def _write_domains(session: Session, inventory: Inventory) -> int:
    """Replace the domains (and their records) of the instances that list them."""
    if not inventory.domains:
        return 0
    listed = {d.name for ds in inventory.domains.values() for d in ds}
    # Domains the listing instances hold now and no longer list: gone, with what hangs
    # on them. A domain listed under another instance of the file moves instead.
    gone: list[int] = []
    for chunk in chunks(sorted(inventory.domains)):
        rows = session.execute(
            select(col(Domain.id), col(Domain.name)).where(col(Domain.instance_id).in_(chunk))
        ).all()
        gone.extend(domain_id for domain_id, name in rows if name not in listed)
    for chunk in chunks(gone):
        session.execute(
            delete(Record).where(col(Record.domain_id).in_(chunk)),
            execution_options={"synchronize_session": False},
        )
        session.execute(
            delete(Ticket).where(col(Ticket.domain_id).in_(chunk)),
            execution_options={"synchronize_session": False},
        )
        session.execute(
            delete(Domain).where(col(Domain.id).in_(chunk)),
            execution_options={"synchronize_session": False},
        )

    stored = inventory.stored.domains
    ids: dict[str, int] = {}
    kept: list[dict[str, Any]] = []
    new: list[dict[str, Any]] = []
    for instance_id, domains in inventory.domains.items():
        for d in domains:
            row = {
                "name": d.name,
                "instance_id": instance_id,
                "registrar": d.registrar,
                "epp_statuses": d.epp_statuses,
                "nameservers": d.nameservers,
            }
            if d.name in stored:
                ids[d.name] = stored[d.name][0]
                kept.append({"id": stored[d.name][0], **row})
            else:
                new.append(row)
    for chunk in chunks(kept):
        session.execute(update(Domain), chunk)
    kept_ids = [r["id"] for r in kept]
    for chunk in chunks(kept_ids):
        session.execute(
            delete(Record).where(col(Record.domain_id).in_(chunk)),
            execution_options={"synchronize_session": False},
        )
    for chunk in chunks(new):
        session.execute(insert(Domain), chunk)
    for chunk in chunks([r["name"] for r in new]):
        ids.update(
            session.execute(
                select(col(Domain.name), col(Domain.id)).where(col(Domain.name).in_(chunk))
            ).all()
        )

    def record_rows() -> Iterator[dict[str, Any]]:
        for instance_id, domains in inventory.domains.items():
            cluster = inventory.serving_cluster[instance_id]
            for d in domains:
                for r in d.records:
                    yield {
                        "domain_id": ids[d.name],
                        "cluster_code": cluster,
                        "type": r.type,
                        "host": r.host,
                        "value": r.value,
                        "ttl": r.ttl,
                    }

    for chunk in chunks(record_rows(), 2000):
        session.execute(insert(Record), chunk)
    _write_release_stages(session, inventory, ids)
    return len(gone)


def _write_release_stages(session: Session, inventory: Inventory, ids: dict[str, int]) -> None:
    """The release stage of each domain the document gives one (an export of a release
    under way), replacing what was stored; the others keep theirs."""
    defaults = {
        column: field.get_default(call_default_factory=True)
        for column, field in DomainReleaseBase.model_fields.items()
    }
    rows = [
        {**defaults, **d.release, "domain_id": ids[d.name], "instance_id": instance_id}
        for instance_id, domains in inventory.domains.items()
        for d in domains
        if d.release is not None
    ]
    for chunk in chunks([r["domain_id"] for r in rows]):
        session.execute(
            delete(DomainRelease).where(col(DomainRelease.domain_id).in_(chunk)),
            execution_options={"synchronize_session": False},
        )
    for chunk in chunks(rows):
        session.execute(insert(DomainRelease), chunk)


def _move_kept_records(session: Session, inventory: Inventory) -> None:
    """Records of instances that keep their stored domains follow the instance's
    (possibly new) cluster or state."""
    by_cluster: dict[str, list[str]] = {}
    for row in inventory.instances:
        if row["id"] in inventory.stored.instance_ids and row["id"] not in inventory.domains:
            by_cluster.setdefault(inventory.serving_cluster[row["id"]], []).append(row["id"])
    for cluster, instance_ids in by_cluster.items():
        for chunk in chunks(instance_ids):
            session.execute(
                update(Record)
                .where(
                    col(Record.domain_id).in_(
                        select(col(Domain.id)).where(col(Domain.instance_id).in_(chunk))
                    ),
                    col(Record.cluster_code) != cluster,
                )
                .values(cluster_code=cluster),
                execution_options={"synchronize_session": False},
            )
