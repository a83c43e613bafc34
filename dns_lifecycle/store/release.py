"""Release one instance (rules 6 and 7), as one transaction.

Within it: keep a zone-file copy of every domain, copy every record to the free
cluster and delete it from the paid one, check that the free cluster now serves
exactly what the paid one served, record or ticket each domain's delegation, mark the
instance released and queue the "released" notice. Any failure rolls all of it back:
the instance stays expired with its records on the paid cluster, and the next run
tries again.

The registrar is never called inside that transaction: the caller first asks
:func:`domains_to_switch`, has the registrar switch them, and hands the outcome to
:func:`release_instance`, which records the new delegation in ``domain.nameservers``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlmodel import Session, col

from dns_lifecycle.core.errors import LifecycleError, NotFound, ReleaseCheckFailed
from dns_lifecycle.lifecycle.expiry import is_release_due
from dns_lifecycle.lifecycle.nameservers import NameserverAction, nameserver_action
from dns_lifecycle.lifecycle.notices import Released as ReleasedNotice
from dns_lifecycle.lifecycle.zonefile import Rr, zone_file
from dns_lifecycle.store.notifications import insert_ignoring_duplicates, insert_notices
from dns_lifecycle.store.subscriptions import addressee, lock_instance
from models import Account, Cluster, Domain, Instance, Record, Ticket, ZoneSnapshot

RECORDS = Record.__table__  # type: ignore[attr-defined]
TICKETS = Ticket.__table__  # type: ignore[attr-defined]


def free_cluster(session: Session) -> Cluster:
    cluster = (
        session.execute(select(Cluster).where(Cluster.kind == "free").order_by(Cluster.code))
        .scalars()
        .first()
    )
    if cluster is None:
        raise LifecycleError(
            "no free cluster is configured: import one with kind 'free' and its name "
            "servers before releasing instances"
        )
    return cluster


@dataclass
class Released:
    instance_id: str
    domains: list[dict[str, Any]] = field(default_factory=list)
    records_moved: int = 0
    tickets_opened: int = 0


def ticket_open_key(domain_name: str, reason: str) -> str:
    return f"{domain_name}:{reason}"


def domains_to_switch(
    session: Session, instance_id: str, *, as_of: datetime, grace_days: int
) -> tuple[list[str], list[str]]:
    """The free cluster's name servers and the domains of the instance that release
    switches to them (HiChina, unlocked); no domains when the instance is not due."""
    instance = session.get(Instance, instance_id)
    if (
        instance is None
        or instance.state != "expired"
        or not is_release_due(instance.expires_at, as_of, grace_days)
    ):
        return [], []
    rows = session.execute(
        select(col(Domain.name), col(Domain.registrar), col(Domain.epp_statuses))
        .where(col(Domain.instance_id) == instance_id)
        .order_by(col(Domain.name))
    )
    names = [r.name for r in rows if nameserver_action(r.registrar, r.epp_statuses) == "switched"]
    return (list(free_cluster(session).nameservers) if names else []), names


def release_instance(
    session: Session,
    instance_id: str,
    *,
    as_of: datetime,
    now: datetime,
    grace_days: int,
    switched: Mapping[str, NameserverAction],
    before_commit: Callable[[], None] | None = None,
) -> Released | None:
    """Release the instance if it is still due; None when it no longer is (renewed, or
    released meanwhile by an overlapping run, whose lock this one waited for).

    ``switched`` is what the registrar did with each domain of :func:`domains_to_switch`:
    ``switched`` or ``domain_locked``."""
    try:
        instance = lock_instance(session, instance_id)
    except NotFound:
        return None
    if instance.state != "expired" or not is_release_due(instance.expires_at, as_of, grace_days):
        return None
    free = free_cluster(session)
    account = session.get(Account, instance.account_id)
    domains = list(
        session.execute(
            select(Domain).where(Domain.instance_id == instance.id).order_by(Domain.name)
        ).scalars()
    )
    result = Released(instance.id)
    domain_ids = [d.id for d in domains]
    before = list(session.execute(select(Record).where(Record.domain_id.in_(domain_ids))).scalars())
    # What is served, per domain: after release the free cluster must serve all of it.
    expected = Counter(_served(r) for r in before)

    # 1. A zone-file copy of every domain, kept with the instance.
    by_domain: dict[int, list[Rr]] = {d.id: [] for d in domains}
    for r in before:
        by_domain[r.domain_id].append(_rr(r))
    if domains:
        session.execute(
            insert(ZoneSnapshot),
            [
                {
                    "instance_id": instance.id,
                    "domain_name": d.name,
                    "zone_text": zone_file(d.name, by_domain[d.id], generated_at=now),
                    "created_at": now,
                }
                for d in domains
            ],
        )

    # 2. Move the records: copy to the free cluster, then remove from the paid one.
    moving = [r for r in before if r.cluster_code != free.code]
    if moving:
        session.execute(
            insert(RECORDS),
            [
                {
                    "domain_id": r.domain_id,
                    "cluster_code": free.code,
                    "type": r.type,
                    "host": r.host,
                    "value": r.value,
                    "ttl": r.ttl,
                }
                for r in moving
            ],
        )
        session.execute(delete(RECORDS).where(RECORDS.c.id.in_([r.id for r in moving])))
    result.records_moved = len(moving)

    # 3. Verify before commit: the free cluster serves exactly what the paid one did.
    after = session.execute(select(Record).where(Record.domain_id.in_(domain_ids))).scalars()
    on_free = Counter(_served(r) for r in after if r.cluster_code == free.code)
    if on_free != expected:
        raise ReleaseCheckFailed(
            f"instance {instance.id}: after the move the free cluster would serve "
            f"{sum(on_free.values())} records where {sum(expected.values())} were served "
            "before; nothing was moved, and the next run retries it"
        )

    # 4. Name servers, domain by domain.
    tickets = []
    for d in domains:
        action = nameserver_action(d.registrar, d.epp_statuses)
        if action == "switched":
            if d.name not in switched:
                raise LifecycleError(
                    f"domain {d.name} of instance {instance.id} was not switched at the "
                    "registrar before its release (added meanwhile?): the next run does it"
                )
            action = switched[d.name]
        if action == "switched":
            # The registrar applied it: the stored delegation follows, whatever the backend.
            d.nameservers = list(free.nameservers)
            session.add(d)
        result.domains.append({"name": d.name, "action": action, "registrar": d.registrar})
        if action != "switched":
            tickets.append(
                {
                    "domain_id": d.id,
                    "instance_id": instance.id,
                    "reason": action,
                    "state": "open",
                    "open_key": ticket_open_key(d.name, action),
                    "details": {
                        "domain": d.name,
                        "registrar": d.registrar,
                        "epp_statuses": d.epp_statuses,
                        "set_nameservers": free.nameservers,
                    },
                    "sink_state": "pending",
                    "sink_attempts": 0,
                    "created_at": now,
                }
            )
    result.tickets_opened = len(insert_ignoring_duplicates(session, TICKETS, tickets, "open_key"))

    # 5. Released, and told.
    instance.state = "released"
    instance.released_at = now
    session.add(instance)
    notice = ReleasedNotice.to(
        addressee(instance, account),
        expires_at=instance.expires_at,
        released_at=now,
        free_nameservers=list(free.nameservers),
        domains=result.domains,
    )
    insert_notices(session, notice.rows(now))
    if before_commit is not None:
        before_commit()  # a seam for fault-injection tests
    session.flush()
    return result


def _rr(r: Record) -> Rr:
    return Rr(type=r.type, host=r.host, value=r.value, ttl=r.ttl)


def _served(r: Record) -> tuple[int, Rr]:
    return (r.domain_id, _rr(r))
