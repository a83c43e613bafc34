"""The release of instances (rules 6 and 7), as recorded stages per domain.

Release talks to DNS servers and registrars, so it cannot be one transaction: each
domain moves through the stages of ``lifecycle.expiry.STAGES``, the release engine
(``dns_lifecycle.release``) making each outside call and ``store.release_outcomes``
recording its outcome, in a short transaction, before the next stage starts. A row of
``domain_release`` says where a domain stands; a crashed run is finished by the next one
from there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from dns_lifecycle.core.errors import LifecycleError, NotFound, shortened
from dns_lifecycle.lifecycle.expiry import (
    DELEGATION_TICKETS,
    drain_after_seen,
    instance_released,
    is_release_due,
    release_due_until,
    stage_passed,
)
from dns_lifecycle.lifecycle.notices import Released as ReleasedNotice
from dns_lifecycle.lifecycle.notices import iso
from dns_lifecycle.lifecycle.zonefile import Rr, zone_file
from dns_lifecycle.store import table_of
from dns_lifecycle.store.notifications import insert_notices
from dns_lifecycle.store.scan import AnySelect
from dns_lifecycle.store.subscriptions import addressee, for_update
from models import Account, Cluster, Domain, DomainRelease, Instance, Ticket, ZoneSnapshot

TICKETS = table_of(Ticket)
RELEASES = table_of(DomainRelease)
SNAPSHOTS = table_of(ZoneSnapshot)
DOMAINS = table_of(Domain)


def free_cluster(session: Session) -> Cluster:
    cluster = (
        session.execute(
            select(Cluster).where(col(Cluster.kind) == "free").order_by(col(Cluster.code))
        )
        .scalars()
        .first()
    )
    if cluster is None:
        raise LifecycleError(
            "no free cluster is configured: import one with kind 'free' and its name "
            "servers before releasing instances"
        )
    return cluster


def all_clusters(session: Session) -> list[Cluster]:
    return list(session.execute(select(Cluster).order_by(col(Cluster.code))).scalars())


# --- what is due ----------------------------------------------------------------------


def expired_due(
    as_of: datetime, grace_days: int, instance_ids: list[str] | None
) -> Callable[[], AnySelect]:
    """Instances expired for the whole grace period (for ``scan_batches``)."""

    def query() -> AnySelect:
        stmt: AnySelect = select(col(Instance.id), col(Instance.expires_at)).where(
            col(Instance.state) == "expired",
            col(Instance.expires_at) <= release_due_until(as_of, grace_days),
        )
        return stmt.where(col(Instance.id).in_(instance_ids)) if instance_ids else stmt

    return query


def released_unfinished(instance_ids: list[str] | None) -> Callable[[], AnySelect]:
    """Released instances with a domain whose paid copy is not deleted yet."""

    def query() -> AnySelect:
        pending = exists().where(
            col(DomainRelease.instance_id) == col(Instance.id),
            col(DomainRelease.stage) != "deleted",
        )
        stmt: AnySelect = select(col(Instance.id), col(Instance.expires_at)).where(
            col(Instance.state) == "released", pending
        )
        return stmt.where(col(Instance.id).in_(instance_ids)) if instance_ids else stmt

    return query


def begin_release(session: Session, instance_ids: list[str], now: datetime) -> None:
    """A ``pending`` row for every domain of these instances that has none."""
    rows = session.execute(
        select(col(Domain.id), col(Domain.instance_id))
        .where(col(Domain.instance_id).in_(instance_ids))
        .where(~exists().where(col(DomainRelease.domain_id) == col(Domain.id)))
    ).all()
    if rows:
        dialect = session.get_bind().dialect.name
        builder = postgresql.insert if dialect == "postgresql" else sqlite.insert
        # Two overlapping runs may both begin: the first row stands.
        session.execute(
            builder(RELEASES).on_conflict_do_nothing(index_elements=["domain_id"]),
            [
                {
                    "domain_id": domain_id,
                    "instance_id": instance_id,
                    "stage": "pending",
                    "verify_failures": 0,
                    "updated_at": now,
                }
                for domain_id, instance_id in rows
            ],
        )


# --- one domain's progress ------------------------------------------------------------


@dataclass
class DomainWork:
    """One domain's release as a run sees it (detached from any session)."""

    domain_id: int
    name: str
    instance_id: str
    registrar: str
    epp_statuses: list[str]
    paid_cluster: str
    stage: str
    records: list[Rr] | None
    delegation: str | None
    switch_task: str | None
    verify_failures: int
    blocked: str | None  # the reason of an open ticket that stops this domain
    verified_at: datetime | None
    delegated_at: datetime | None
    drain_until: datetime | None
    # The reason of the last ticket that stopped this domain, once a person resolved it.
    resolved: str | None = None
    # Whether the instance is released: its account has been sent the released notice,
    # which tells the owner of a ticketed domain what to change.
    instance_released: bool = False


def domain_work(session: Session, instance_ids: list[str]) -> list[DomainWork]:
    """The release rows of the domains of these instances, by instance and name."""
    open_block = exists().where(
        col(Ticket.domain_id) == col(DomainRelease.domain_id),
        col(Ticket.state) == "open",
        col(Ticket.reason) == col(DomainRelease.blocked),
    )
    rows = session.execute(
        select(
            DomainRelease,
            col(Domain.name),
            col(Domain.registrar),
            col(Domain.epp_statuses),
            col(Instance.cluster_code),
            open_block.label("is_blocked"),
            col(Instance.state),
        )
        .join(Domain, col(Domain.id) == col(DomainRelease.domain_id))
        .join(Instance, col(Instance.id) == col(DomainRelease.instance_id))
        .where(col(DomainRelease.instance_id).in_(instance_ids))
        .order_by(col(DomainRelease.instance_id), col(Domain.name))
    ).all()
    return [
        DomainWork(
            domain_id=r.domain_id,
            name=name,
            instance_id=r.instance_id,
            registrar=registrar,
            epp_statuses=list(epp),
            paid_cluster=cluster,
            stage=r.stage,
            records=None if r.records is None else [Rr.of_row(x) for x in r.records],
            delegation=r.delegation,
            switch_task=r.switch_task,
            verify_failures=r.verify_failures,
            blocked=r.blocked if is_blocked else None,
            verified_at=r.verified_at,
            delegated_at=r.delegated_at,
            drain_until=r.drain_until,
            resolved=None if is_blocked else r.blocked,
            instance_released=state == "released",
        )
        for r, name, registrar, epp, cluster, is_blocked, state in rows
    ]


def zone_copy(domain: str, records: Iterable[Rr], now: datetime) -> str:
    """The zone-file copy of what the paid cluster served (raises ``ZoneFileError``)."""
    return zone_file(domain, records, generated_at=now)


# --- the instance ---------------------------------------------------------------------


@dataclass
class Released:
    instance_id: str
    domains: list[dict[str, Any]] = field(default_factory=list)


# A released notice this long after a ticketed domain's delegation is late: the owner
# is given the whole time to change the name servers from the notice on.
TOLD_LATE = timedelta(days=1)


def finish_instances(
    session: Session,
    instance_ids: list[str],
    *,
    as_of: datetime,
    grace_days: int,
    now: datetime,
    change_by: Callable[[datetime], datetime],
) -> list[Released]:
    """Mark released, and queue the notice of, each of these instances whose domains all
    passed stage 4 (the others wait; an instance no longer due is left alone)."""
    instances = [
        i
        for i in session.execute(
            for_update(
                session,
                select(Instance)
                .where(col(Instance.id).in_(instance_ids))
                .order_by(col(Instance.id)),
            )
        ).scalars()
        if i.state == "expired" and is_release_due(i.expires_at, as_of, grace_days)
    ]
    if not instances:
        return []
    ids = [i.id for i in instances]
    stages: dict[str, list[tuple[DomainRelease, str, str]]] = defaultdict(list)
    for r, name, registrar in session.execute(
        select(DomainRelease, col(Domain.name), col(Domain.registrar))
        .join(Domain, col(Domain.id) == col(DomainRelease.domain_id))
        .where(col(DomainRelease.instance_id).in_(ids))
        .order_by(col(Domain.name))
    ):
        stages[r.instance_id].append((r, name, registrar))
    domain_counts: dict[str, int] = {
        instance_id: n
        for instance_id, n in session.execute(
            select(col(Domain.instance_id), func.count())
            .where(col(Domain.instance_id).in_(ids))
            .group_by(col(Domain.instance_id))
        )
    }
    done = [
        i
        for i in instances
        if len(stages[i.id]) == domain_counts.get(i.id, 0)
        and instance_released([r.stage for r, *_ in stages[i.id]])
    ]
    if not done:
        return []
    free = free_cluster(session)
    accounts = {
        a.id: a
        for a in session.execute(
            select(Account).where(col(Account.id).in_({i.account_id for i in done}))
        ).scalars()
    }
    results: list[Released] = []
    notices: list[dict[str, Any]] = []
    for instance in done:
        result = Released(instance.id)
        for r, name, registrar in stages[instance.id]:
            entry: dict[str, Any] = {"name": name, "action": r.delegation, "registrar": registrar}
            if r.delegation != "switched" and r.delegated_at is not None:
                live = r.drain_until is not None and r.drain_until > r.delegated_at
                if (
                    live
                    and r.drain_until is not None
                    and r.stage != "deleted"
                    and now - r.delegated_at > TOLD_LATE
                ):
                    # Told long after the delegation (another domain of the instance
                    # held the release back): the owner gets the whole time from now,
                    # and the paid copy is kept that long.
                    kept_until = max(r.drain_until, change_by(now))
                    r.drain_until = kept_until
                    session.add(r)
                    entry["change_by"] = iso(kept_until)
                # What the release did for this backend: a paid copy whose drain ended
                # as it began (no caches to wait for) is gone, and no date is promised.
                elif r.stage == "deleted" or (r.drain_until is not None and r.drain_until <= now):
                    entry["paid_copy_deleted"] = True
                else:
                    entry["change_by"] = iso(change_by(r.delegated_at))
            result.domains.append(entry)
        instance.state = "released"
        instance.released_at = now
        session.add(instance)
        notice = ReleasedNotice.to(
            addressee(instance, accounts[instance.account_id]),
            expires_at=instance.expires_at,
            released_at=now,
            free_nameservers=list(free.nameservers),
            domains=result.domains,
        )
        notices += notice.rows(now)
        results.append(result)
    insert_notices(session, notices)
    session.flush()
    return results


def drain_seen(session: Session, domain_id: int, seen_at: datetime, drain_hours: float) -> None:
    """DNS shows the domain delegated to the free name servers: its drain ends at the
    latest ``drain_hours`` from now."""
    row = session.get(DomainRelease, domain_id)
    if row is None or not stage_passed(row.stage, "delegated") or row.stage == "deleted":
        return
    row.drain_until = drain_after_seen(row.drain_until, seen_at, drain_hours)
    row.updated_at = seen_at
    session.add(row)


def release_stages(session: Session, instance_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each domain's release stage, by domain name: for ``instances show`` and the export."""
    rows = session.execute(
        select(col(Domain.name), DomainRelease)
        .join(DomainRelease, col(DomainRelease.domain_id) == col(Domain.id))
        .where(col(Domain.instance_id).in_(instance_ids))
    ).all()
    return {
        name: {
            "stage": r.stage,
            "delegation": r.delegation,
            "blocked": r.blocked,
            "error": r.error,
            "drain_until": iso(r.drain_until) if r.drain_until else None,
        }
        for name, r in rows
    }


def open_delegation_tickets(
    session: Session, instance_ids: list[str] | None
) -> list[tuple[int, str, str]]:
    """(ticket id, domain name, instance id) of every open ticket about a delegation."""
    stmt = (
        select(col(Ticket.id), col(Domain.name), col(Ticket.instance_id))
        .join(Domain, col(Domain.id) == col(Ticket.domain_id))
        .where(col(Ticket.state) == "open", col(Ticket.reason).in_(DELEGATION_TICKETS))
        .order_by(col(Ticket.id))
    )
    if instance_ids:
        stmt = stmt.where(col(Ticket.instance_id).in_(instance_ids))
    return [(r[0], r[1], r[2]) for r in session.execute(stmt)]


def zones_on_cluster(session: Session, cluster_code: str) -> dict[str, list[Rr]]:
    """Each domain of the instances ``cluster_code`` serves, with the records the
    inventory holds for it there (by domain name, in name order)."""
    from models import Record

    zones: dict[str, list[Rr]] = {
        name: []
        for (name,) in session.execute(
            select(col(Domain.name))
            .join(Instance, col(Instance.id) == col(Domain.instance_id))
            .where(col(Instance.cluster_code) == cluster_code, col(Instance.state) != "released")
            .order_by(col(Domain.name))
        )
    }
    rows = session.execute(
        select(
            col(Domain.name), col(Record.type), col(Record.host), col(Record.value), col(Record.ttl)
        )
        .join(Domain, col(Domain.id) == col(Record.domain_id))
        .where(col(Record.cluster_code) == cluster_code)
        .order_by(col(Record.id))
    )
    for name, *rr in rows:
        if name in zones:
            zones[name].append(Rr(*rr))
    return zones


def cluster_by_code(session: Session, code: str) -> Cluster:
    cluster = session.get(Cluster, code)
    if cluster is None:
        raise NotFound(
            f"cluster {shortened(code)!r} does not exist: `dns-lifecycle export` lists them"
        )
    return cluster
